//! Checks on what a transform returned, before any sink sees it. Built-in
//! and custom guests alike: a row that would break a database statement is
//! dead-lettered with the reason instead of failing the batch.

use serde::de::IgnoredAny;

use crate::record::{Change, Format, Operation, SourceRecord, Value};
use crate::{columns, ident};

/// Longest tie-breaker accepted (Kinesis sequence numbers have up to 128 digits).
const MAX_TIEBREAK: usize = 256;

/// Checks a row the guest made from a record of DynamoDB table `table`.
pub(super) fn check(change: &Change, table: &str) -> Result<(), String> {
    if change.table != table {
        return Err(format!(
            "the row is for table {:?}, but the record was routed as table {table:?}",
            change.table
        ));
    }
    if !change.key.starts_with('{') {
        return Err(format!("the key is not a JSON object: {:?}", change.key));
    }
    json(&change.key, "key")?;
    if let Some(image) = &change.new_image {
        json(image, "new-image")?;
    }
    if let Some(image) = &change.old_image {
        json(image, "old-image")?;
    }
    if change.operation == Operation::Upsert && change.new_image.is_none() {
        return Err("an upsert row has no new-image".into());
    }
    if change.order.tiebreak.len() > MAX_TIEBREAK {
        return Err(format!("the order's tie-breaker is longer than {MAX_TIEBREAK} bytes"));
    }
    for column in &change.extra {
        let folded = ident::fold(&column.name).map_err(|why| format!("extra column: {why}"))?;
        if folded != column.name || columns::is_standard(&column.name) {
            return Err(format!(
                "extra column {:?} must be lower case and not a standard column",
                column.name
            ));
        }
        if let Value::Json(text) = &column.value {
            json(text, &column.name)?;
        }
    }
    Ok(())
}

fn json(text: &str, what: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|e| format!("the {what} is not valid JSON: {e}"))
}

/// Whether the stream records of a batch carry their time in milliseconds,
/// judged by the first one; `None` if the batch holds none (or it does not
/// decode). A stream's precision is one setting for all its records.
pub(super) fn millisecond_precision(records: &[SourceRecord]) -> Option<bool> {
    let first = records.iter().find(|r| matches!(r.format, Format::StreamChange))?;
    ddb_core::micro_precision(&first.payload).ok().map(|micro| !micro)
}
