//! Records to rows with `ddb-core`: what `builtin:ddb-json` does, for every
//! guest built on this crate.

use std::sync::OnceLock;

use crate::sluice::transform::types::{Operation, Order, RecordFormat, Row, SourceRecord, TableConfig};

/// The table this instance serves, from `configure`.
static TABLE: OnceLock<TableConfig> = OnceLock::new();

/// Keeps the table's configuration (call it from `configure`): export
/// lines carry no table name or key, the manifest does.
pub fn remember(config: TableConfig) -> Result<(), String> {
    TABLE.set(config).map_err(|_| "configure was called twice".to_owned())
}

/// The table this instance serves, once [`remember`]ed.
pub fn table() -> Option<&'static TableConfig> {
    TABLE.get()
}

/// Decodes one record into a row as `builtin:ddb-json` does, or says why it
/// cannot be one: the table, the canonical key, what happened and when, and
/// the images as plain JSON (numbers keep DynamoDB's digits, sets become
/// arrays, binaries stay base64).
pub fn decode(record: SourceRecord) -> Result<Row, String> {
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
