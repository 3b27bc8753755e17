//! Sinks store rows, dead letters and checkpoints, all of one batch in one
//! transaction, and give the checkpoints back on the next start. How that
//! makes a run effectively-once is explained in `CHECKPOINTS.md`.
//!
//! Every sink keeps the same promises:
//! * a row is replaced only by a change whose order is newer or equal;
//! * a delete either marks the row (`soft`) or removes it and keeps a
//!   tombstone (`hard`), so an older change cannot bring the item back;
//! * a newer run fences out an older one still writing (a writer epoch).

mod postgres;
mod redshift;
mod retry;
mod s3;
mod sqlite;

use std::collections::HashMap;

use anyhow::Result;

pub use postgres::PostgresSink;
pub use redshift::RedshiftSink;
pub use s3::S3Sink;
pub use sqlite::SqliteSink;

use crate::manifest::SinkPlan;
use crate::record::{Checkpoint, DeleteMode, Operation, Row, SinkBatch, Value};

/// The standard columns of every target table: the seed's layout, then what
/// ordering needs. Extra columns from guests may not reuse these names.
pub const COLUMNS: &[&str] = &[
    "table_name",
    "keys",
    "event_id",
    "last_event_name",
    "approx_creation_timestamp_millis",
    "new_image",
    "old_image",
    "error",
    "has_parsing_error",
    "is_deleted",
    "is_ttl_delete",
    "raw_payload_size_bytes",
    "raw_payload",
    "change_micros",
    "change_seq",
    "source_position",
];

pub trait Sink: Send {
    /// Creates missing tables and claims the pipeline's writer epoch, which
    /// fences out any older run of the same pipeline.
    fn prepare(&mut self, pipeline: &str, targets: &[(String, DeleteMode)]) -> Result<()>;

    /// The checkpoints committed so far, to resume from.
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>>;

    /// Writes a batch's rows, dead letters and checkpoints atomically.
    fn write(&mut self, batch: &SinkBatch) -> Result<Applied>;
}

/// Reads what a sink holds, for `sluice status`, and nothing else: no DDL,
/// no writer epoch, no clean-up, no file or table created. Safe while a run
/// is writing, and on a pipeline that never ran.
pub trait Inspector {
    fn status(
        &mut self,
        pipeline: &str,
        targets: &[(String, DeleteMode)],
        sample_rows: usize,
    ) -> Result<Status>;
}

/// What a batch did to the sink.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub upserted: u64,
    pub deleted: u64,
    /// Changes older than what the sink already held, so not applied.
    pub stale: u64,
    pub dead_lettered: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Applied) {
        self.upserted += other.upserted;
        self.deleted += other.deleted;
        self.stale += other.stale;
        self.dead_lettered += other.dead_lettered;
    }
}

#[derive(Debug, Default)]
pub struct Status {
    /// (stream, position, committed at)
    pub checkpoints: Vec<(String, String, String)>,
    pub tables: Vec<TableStatus>,
    pub dead_letters: u64,
    /// (origin, reason) of the most recent dead letters.
    pub recent_dead_letters: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct TableStatus {
    pub name: String,
    pub live: u64,
    pub deleted: u64,
    pub tombstones: u64,
    /// A few rows as (keys, is_deleted, new_image), newest first.
    pub sample: Vec<(String, bool, Option<String>)>,
}

/// Opens the sink a plan names.
pub fn open(plan: &SinkPlan) -> Result<Box<dyn Sink>> {
    match plan {
        SinkPlan::Sqlite { path } => Ok(Box::new(SqliteSink::open(path)?)),
        SinkPlan::Postgres(p) => Ok(Box::new(PostgresSink::open(p)?)),
        SinkPlan::Redshift(r) => Ok(Box::new(RedshiftSink::open(r)?)),
        SinkPlan::S3(o) => Ok(Box::new(S3Sink::open(o)?)),
    }
}

/// Opens a read-only view of the sink a plan names.
pub fn inspect(plan: &SinkPlan) -> Result<Box<dyn Inspector>> {
    match plan {
        SinkPlan::Sqlite { path } => Ok(Box::new(sqlite::Inspect::open(path)?)),
        SinkPlan::Postgres(p) => Ok(Box::new(postgres::Inspect::open(p)?)),
        SinkPlan::Redshift(r) => Ok(Box::new(redshift::Inspect::open(r)?)),
        SinkPlan::S3(o) => Ok(Box::new(s3::Inspect::open(o)?)),
    }
}

/// What a sink keeps about one target table.
pub(crate) struct TargetTable {
    pub deletes: DeleteMode,
    /// Columns beyond [`COLUMNS`], in the order guests brought them.
    pub extras: Vec<String>,
}

/// The extra columns `rows` bring that their tables lack yet, each once:
/// (target, column, the first non-null value, whose kind types the column).
pub(crate) fn missing_columns<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    targets: &HashMap<String, TargetTable>,
) -> Vec<(&'a str, &'a str, &'a Value)> {
    let mut missing: Vec<(&str, &str, &Value)> = Vec::new();
    for row in rows {
        let known = &targets[&*row.target].extras;
        for column in &row.change.extra {
            let seen = missing.iter().any(|(t, c, _)| *t == &*row.target && *c == column.name);
            if !matches!(column.value, Value::Null) && !known.contains(&column.name) && !seen {
                missing.push((&row.target, &column.name, &column.value));
            }
        }
    }
    missing
}

/// Why the sink a plan names cannot store a row, if it cannot (a value the
/// database would refuse). The pipeline asks before it reduces a batch to the
/// latest change per item, so that a refused change costs its own record and
/// never hides an earlier valid change to the same item.
pub fn refuses(plan: &SinkPlan, row: &Row) -> Option<String> {
    match plan {
        SinkPlan::Postgres(_) => postgres::refuses(row),
        SinkPlan::Redshift(r) => redshift::refuses(row, r.super_max_string_bytes),
        SinkPlan::Sqlite { .. } | SinkPlan::S3(_) => None,
    }
}

/// The first of a row's text values that holds a NUL character, which
/// PostgreSQL's text and Redshift's VARCHAR cannot store. A row's data is
/// never altered to fit, so the row is refused. (Keys and documents are JSON,
/// where a NUL is always escaped; a transform's `error` message is made
/// storable instead, see `record::message`.)
pub(crate) fn nul_in_text(row: &Row) -> Option<String> {
    let c = &row.change;
    let texts = [
        ("table_name", c.table.as_str()),
        ("event_id", c.event_id.as_str()),
        ("last_event_name", c.event_name.as_str()),
        ("change_seq", c.order.tiebreak.as_str()),
        ("source_position", row.origin.as_str()),
    ]
    .into_iter()
    .chain(c.extra.iter().filter_map(|col| match &col.value {
        Value::Text(t) => Some((col.name.as_str(), t.as_str())),
        _ => None,
    }));
    for (column, text) in texts {
        if text.contains('\0') {
            return Some(format!("{column} holds a NUL character, which the database's text cannot store"));
        }
    }
    None
}

/// The first of a row's documents that holds the NUL character (`\u0000`),
/// which PostgreSQL's jsonb cannot store, nor Redshift's SUPER as the
/// stand-in emulates it (Redshift does not document either way).
pub(crate) fn nul_in_document(row: &Row) -> Option<String> {
    let c = &row.change;
    let documents = [("new_image", c.new_image.as_deref()), ("old_image", c.old_image.as_deref())]
        .into_iter()
        .chain(c.extra.iter().filter_map(|col| match &col.value {
            Value::Json(j) => Some((col.name.as_str(), Some(j.as_str()))),
            _ => None,
        }));
    for (name, text) in documents {
        if text.is_some_and(has_escaped_nul) {
            return Some(format!(
                "{name} holds the NUL character (\\u0000), which the database's JSON cannot store"
            ));
        }
    }
    None
}

/// Whether JSON text holds a `\u0000` escape (not merely the characters of one).
fn has_escaped_nul(json: &str) -> bool {
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u') && b.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The raw record as text for `raw_payload`, when a database's text can
/// hold it: valid UTF-8 without NUL. Otherwise the column is NULL (its size
/// is still in `raw_payload_size_bytes`); the record is never altered.
pub(crate) fn raw_text(raw: &[u8]) -> Option<&str> {
    std::str::from_utf8(raw).ok().filter(|text| !text.contains('\0'))
}

/// One row as a JSON line (Redshift's COPY staging, the S3 sink): keys are
/// column names, documents are embedded as JSON, not as strings.
pub(crate) fn json_line(row: &Row, extras: &[String], raw_payload: Option<&str>) -> String {
    let c = &row.change;
    let deleted = c.operation.is_delete();
    let text =
        |v: Option<&str>| v.map_or_else(|| "null".to_owned(), |s| serde_json::Value::from(s).to_string());
    let document = |v: Option<&str>| v.unwrap_or("null").to_owned();
    let mut fields = vec![
        text(Some(&c.table)),
        text(Some(&c.key)),
        text(Some(&c.event_id)),
        text(Some(&c.event_name)),
        (c.order.micros / 1000).to_string(),
        document(if deleted { None } else { c.new_image.as_deref() }),
        document(c.old_image.as_deref()),
        text(c.error.as_deref()),
        c.error.is_some().to_string(),
        deleted.to_string(),
        (c.operation == Operation::TtlDelete).to_string(),
        row.raw.len().to_string(),
        text(raw_payload),
        c.order.micros.to_string(),
        text(Some(&c.order.tiebreak)),
        text(Some(&row.origin)),
    ];
    for name in extras {
        fields.push(match c.extra.iter().find(|col| col.name == *name).map(|col| &col.value) {
            None | Some(Value::Null) => "null".to_owned(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Integer(i)) => i.to_string(),
            Some(Value::Text(t)) => text(Some(t)),
            Some(Value::Json(j)) => j.clone(),
        });
    }
    let names = COLUMNS.iter().map(|c| c.to_string()).chain(extras.iter().cloned());
    let members: Vec<String> =
        names.zip(fields).map(|(n, v)| format!("{}:{v}", serde_json::Value::from(n))).collect();
    format!("{{{}}}", members.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(has_escaped_nul(r#"{"a":"x\u0000y"}"#));
        assert!(!has_escaped_nul(r#"{"a":"x\\u0000y"}"#));
        assert!(has_escaped_nul(r#"{"a":"x\\\u0000"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\u0001"}"#));
    }
}
