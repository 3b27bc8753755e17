//! What the stream sources read from a change record before any guest sees
//! it: the DynamoDB table it names, with a scan that stops at `tableName`,
//! so the pipeline routes records without parsing them; and, once per
//! process, whether the stream's times are in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::record::{Format, SourceRecord, UnreadableTable};

/// Makes [`SourceRecord`]s of stream changes; one per reader.
#[derive(Default)]
pub struct ChangeRecords {
    /// The last table read, shared by the records that name it again.
    last: Option<Arc<str>>,
}

impl ChangeRecords {
    pub fn record(&mut self, payload: Vec<u8>, partition: Arc<str>, sequence: String) -> SourceRecord {
        warn_once_if_milliseconds(&payload);
        let table = match ddb_core::table_name(&payload) {
            Ok(name) => Ok(match &self.last {
                Some(last) if **last == *name => last.clone(),
                _ => self.last.insert(name.into()).clone(),
            }),
            Err(e) => Err(UnreadableTable(e.to_string())),
        };
        SourceRecord { payload, table, partition, sequence, format: Format::StreamChange }
    }
}

/// A stream's precision is one setting for all its records, so the first
/// record that decodes speaks for the run (one run per process).
fn warn_once_if_milliseconds(payload: &[u8]) {
    static KNOWN: AtomicBool = AtomicBool::new(false);
    if KNOWN.load(Ordering::Relaxed) {
        return;
    }
    let Ok(micro) = ddb_core::micro_precision(payload) else { return };
    if !KNOWN.swap(true, Ordering::Relaxed) && !micro {
        tracing::warn!(
            "the stream's records carry ApproximateCreationDateTime in milliseconds: \
             changes to one item within a millisecond are ordered by sequence number, \
             so a change delivered again after a newer one can win over it; switch the \
             stream to MICROSECOND (see the README, \"Streaming from Kinesis\")"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_each_record_with_its_table_once_read() {
        let mut changes = ChangeRecords::default();
        let record = |changes: &mut ChangeRecords, payload: &str| {
            changes.record(payload.as_bytes().to_vec(), "shard-1".into(), "7".into())
        };
        let a = record(&mut changes, r#"{"eventName":"INSERT","tableName":"orders","dynamodb":{}}"#);
        let b = record(&mut changes, r#"{"tableName":"orders"}"#);
        let (a, b) = (a.table.unwrap(), b.table.unwrap());
        assert_eq!(&*a, "orders");
        assert!(Arc::ptr_eq(&a, &b), "one name shared by the records of a table");
        assert_eq!(&*record(&mut changes, r#"{"tableName":"users"}"#).table.unwrap(), "users");

        let junk = record(&mut changes, "\u{1}not json");
        assert!(junk.table.unwrap_err().to_string().starts_with("cannot read the record's tableName: "));
        let nameless = record(&mut changes, r#"{"eventName":"INSERT"}"#);
        assert_eq!(nameless.origin(), "shard-1:7");
        assert_eq!(
            nameless.table.unwrap_err().to_string(),
            "cannot read the record's tableName: the record has no tableName"
        );
    }
}
