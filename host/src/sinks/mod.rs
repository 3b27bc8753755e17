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
mod sqlite;

use std::collections::HashMap;

use anyhow::Result;

pub use postgres::PostgresSink;
pub use redshift::RedshiftSink;
pub use sqlite::SqliteSink;

use crate::manifest::SinkPlan;
use crate::record::{Checkpoint, DeadLetter, DeleteMode, Row, SinkBatch, Value};

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

    /// What is stored, for `sluice status`. Does not claim the writer epoch,
    /// so it is safe while a run is writing.
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

/// Splits rows into those the database can store and dead letters for the
/// rest, so that a value the database would refuse costs one record, not
/// the batch.
pub fn reject(rows: &[Row], refuses: impl Fn(&Row) -> Option<String>) -> (Vec<&Row>, Vec<DeadLetter>) {
    let mut kept = Vec::with_capacity(rows.len());
    let mut dead = Vec::new();
    for row in rows {
        match refuses(row) {
            None => kept.push(row),
            Some(reason) => dead.push(DeadLetter {
                table: Some(row.change.table.clone()),
                origin: row.origin.clone(),
                reason,
                raw: row.raw.clone(),
            }),
        }
    }
    (kept, dead)
}
