//! Records to rows with `ddb-core`, shared by the built-in guests.
//!
//! Each component has its own generated bindings, so other guests include
//! this file by path (`#[path = "../../ddb-json/src/rows.rs"] mod rows;`)
//! instead of depending on this crate.

use std::sync::OnceLock;

use crate::sluice::transform::types::{Operation, Order, RecordFormat, Row, SourceRecord, TableConfig};

/// The table this instance serves, from `configure`.
static TABLE: OnceLock<TableConfig> = OnceLock::new();

/// Keeps the table's configuration for decoding export lines.
pub fn remember(config: TableConfig) -> Result<(), String> {
    TABLE.set(config).map_err(|_| "configure was called twice".to_owned())
}

/// Decodes one record into a row, or the reason it cannot be.
pub fn row(record: SourceRecord) -> Result<Row, String> {
    let decoded = match record.format {
        RecordFormat::StreamChange => ddb_core::decode_stream_record(&record.payload),
        RecordFormat::ExportLine(export) => {
            let table = TABLE.get().ok_or("an export line arrived before configure")?;
            let line = ddb_core::ExportLine {
                table: &table.source_table,
                keys: &table.keys,
                export_micros: export.export_time_micros,
                incremental: export.incremental,
            };
            ddb_core::decode_export_line(&record.payload, line)
        }
    };
    let change = decoded.map_err(|e| e.to_string())?;
    Ok(Row {
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
