//! `builtin:ddb-json`, the default transform: DynamoDB stream records and
//! export lines in, plain-JSON rows out.
//!
//! All decoding lives in `ddb-core`, tested natively; this file only maps its
//! results onto the WIT types. It is also the smallest complete example of a
//! sluice guest: copy it to start your own.

wit_bindgen::generate!({ path: "../../wit", world: "transformer" });

use std::sync::OnceLock;

use exports::sluice::transform::transform::Guest;
use sluice::transform::types::{Operation, Order, Outcome, RecordFormat, Row, SourceRecord, TableConfig};

struct DdbJson;

/// The table this instance serves, from `configure`.
static TABLE: OnceLock<TableConfig> = OnceLock::new();

impl Guest for DdbJson {
    fn configure(config: TableConfig) -> Result<(), String> {
        if let Some(s) = config.settings.first() {
            return Err(format!("ddb-json has no settings, but was given {:?}", s.name));
        }
        TABLE.set(config).map_err(|_| "configure was called twice".to_owned())
    }

    fn transform(records: Vec<SourceRecord>) -> Vec<Outcome> {
        #[cfg(feature = "test-faults")]
        if let Some(outcomes) = faults::inject(&records) {
            return outcomes;
        }
        records.into_iter().map(outcome).collect()
    }
}

fn outcome(record: SourceRecord) -> Outcome {
    let decoded = match record.format {
        RecordFormat::StreamChange => ddb_core::decode_stream_record(&record.payload),
        RecordFormat::ExportLine(export) => {
            let Some(table) = TABLE.get() else {
                return Outcome::Error("an export line arrived before configure".into());
            };
            let line = ddb_core::ExportLine {
                table: &table.source_table,
                keys: &table.keys,
                export_micros: export.export_time_micros,
                incremental: export.incremental,
            };
            ddb_core::decode_export_line(&record.payload, line)
        }
    };
    let change = match decoded {
        Ok(change) => change,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    Outcome::Row(Row {
        table: change.table,
        key: change.key,
        operation: match change.kind {
            ddb_core::ChangeKind::Upsert => Operation::Upsert,
            ddb_core::ChangeKind::Delete => Operation::Delete,
            ddb_core::ChangeKind::TtlDelete => Operation::TtlDelete,
        },
        order: Order { micros: change.micros, tiebreak: record.sequence },
        event_name: change.event_name,
        event_id: change.event_id,
        new_image: change.new_image,
        old_image: change.old_image,
        error: None,
        extra: Vec::new(),
    })
}

#[cfg(feature = "test-faults")]
mod faults {
    //! Guest failures on demand, so the host's isolation can be tested.
    use super::*;

    fn has(r: &SourceRecord, what: &str) -> bool {
        let marker = format!("\"eventID\":\"sluice-fault:{what}\"");
        r.payload.windows(marker.len()).any(|w| w == marker.as_bytes())
    }

    pub fn inject(records: &[SourceRecord]) -> Option<Vec<Outcome>> {
        if records.iter().any(|r| has(r, "probe")) {
            return Some(
                records
                    .iter()
                    .map(|r| if has(r, "probe") { Outcome::Error(probe()) } else { outcome(r.clone()) })
                    .collect(),
            );
        }
        for r in records {
            let has = |what: &str| has(r, what);
            if has("loop") {
                #[allow(clippy::empty_loop)]
                loop {}
            }
            if has("alloc") {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            if has("panic") {
                panic!("the test guest was told to panic");
            }
            if has("miscount") {
                return Some(Vec::new());
            }
        }
        None
    }

    /// What the sandbox lets a guest reach: nothing, the host's tests expect.
    fn probe() -> String {
        let files = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind());
        let env = std::env::vars().count();
        let args = std::env::args().count();
        let net = std::net::TcpStream::connect("127.0.0.1:80").map(drop).map_err(|e| e.kind());
        format!("probe: files={files:?} env={env} args={args} net={net:?}")
    }
}

export!(DdbJson);
