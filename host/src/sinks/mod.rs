//! Sinks store rows, dead letters and checkpoints, and give the checkpoints
//! back on the next start. How that makes a run effectively-once is
//! explained in `CHECKPOINTS.md`.
//!
//! Each sink is a folder: `config.rs` (its manifest section, checked and
//! resolved), the sink itself in `mod.rs`, and a read-only `Inspect` for
//! `sluice status`. Adding one means a folder, a variant of [`SinkConfig`],
//! and its `type` in `manifest/validate.rs`.
//!
//! What each sink promises is in its [`Capabilities`]; all of them replace a
//! row only by a change whose order is newer or equal, and keep a deleted
//! item deleted against older changes (a soft-deleted row or a tombstone).

pub mod postgres;
pub mod redshift;
mod retry;
pub mod s3;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use serde::Serialize;

use crate::columns::{self, Cell};
use crate::manifest::NotReady;
use crate::record::{Checkpoint, DeleteMode, Row, SinkBatch, Value};

/// The sink a manifest names, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    Sqlite(sqlite::Config),
    Postgres(postgres::Config),
    Redshift(redshift::Config),
    S3(s3::Config),
}

/// What a sink guarantees, stated by the sink (the README's table says the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A batch's rows, dead letters and checkpoints commit together or not at all.
    pub transactional: bool,
    /// A newer run of the pipeline stops an older one still writing.
    pub fenced: bool,
    /// It stores every distinct change of a batch, not only the latest per item.
    pub keeps_every_change: bool,
    /// It holds one row per item, which a newer change replaces in place,
    /// so `sluice replay` can rewrite it.
    pub replaces_rows: bool,
}

/// Who opens a sink to write, and how.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub pipeline: &'a str,
    /// The sink tables the manifest routes to, and how they delete.
    pub targets: &'a [(String, DeleteMode)],
    pub same_event: SameEvent,
    pub fencing: Fencing,
}

/// How a sink keeps two writers of one pipeline from both committing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fencing {
    /// A run claims the pipeline's writer epoch when it opens the sink, and
    /// every later batch checks it: a newer run fences out an older one.
    #[default]
    Epoch,
    /// The workers of a coordinated pipeline write at once, each to its own
    /// partitions: a checkpoint's lease counter is checked against the
    /// newest one that claimed its partition ([`Claims`]).
    Leases,
}

/// What a change does to a stored row that already holds its DynamoDB event
/// (delivered again, perhaps at another sequence number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SameEvent {
    /// Leaves it, counted as stale: what a run does with a redelivery.
    #[default]
    Keeps,
    /// Replaces it: `sluice replay` stores what the transform makes of the
    /// change now. Older changes stay stale either way.
    Rewrites,
}

impl SameEvent {
    /// SQL that is true when the event id `new` is the one `old` holds and
    /// so must not replace it.
    fn held(self, new: &str, old: &str) -> String {
        match self {
            SameEvent::Keeps => format!("({new} <> '' AND {new} = {old})"),
            SameEvent::Rewrites => "FALSE".into(),
        }
    }
}

/// A sink ready to write: its tables exist and, where it is fenced, it holds
/// the pipeline's writer epoch.
pub trait Sink: Send {
    /// The checkpoints committed so far, to resume from.
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError>;

    /// Writes a batch's rows, dead letters and checkpoints, atomically where
    /// the sink is transactional. What it applied may come with a later
    /// write's, or with [`Sink::settle`].
    fn write(&mut self, batch: &SinkBatch) -> Result<Applied, SinkError>;

    /// What earlier writes applied that they did not return (Redshift reads
    /// a commit's counts while the next batch is written); called once the
    /// last batch is.
    fn settle(&mut self) -> Result<Applied, SinkError> {
        Ok(Applied::default())
    }
}

/// Where a coordinated worker starts a partition it took the lease of.
/// Opened beside the writing sink, on its own connection.
pub trait Claims: Send {
    /// Raises the partition's fencing token to `lease` and reads its
    /// committed position, in one transaction: from then on no batch with
    /// an older token commits that partition, so what the position says is
    /// all the previous holder will ever have committed. Fails with
    /// [`SinkError::LeaseLost`] if a newer token already claimed it.
    fn claim(&mut self, partition: &str, lease: i64) -> Result<Option<Checkpoint>, SinkError>;
}

/// Why a sink could not open, read its checkpoints or write a batch. Of a
/// batch that failed nothing is committed, whatever the kind, so the next
/// run starts after the last checkpoint. The CLI exits with a code per kind.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A newer run of the pipeline took over the sink.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// Another worker of a coordinated pipeline took a partition's lease:
    /// this worker must read on without it.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// The sink failed as services do while briefly away (a lost
    /// connection, throttling, a restart) for the whole retry window: a
    /// later run may well succeed.
    #[error(transparent)]
    Transient(anyhow::Error),
    /// The sink refused the work: a later run fails the same way until the
    /// cause (a permission, a full disk, a schema) is fixed.
    #[error(transparent)]
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for SinkError {
    /// Sorts a sink's error by the typed error it carries: a [`Fenced`], or
    /// retries that gave up ([`retry::GaveUp`]); anything else is fatal.
    fn from(e: anyhow::Error) -> Self {
        if let Some(fenced) = e.downcast_ref::<Fenced>() {
            SinkError::Fenced(fenced.clone())
        } else if let Some(lost) = e.downcast_ref::<LeaseLost>() {
            SinkError::LeaseLost(lost.clone())
        } else if e.downcast_ref::<retry::GaveUp>().is_some() {
            SinkError::Transient(e)
        } else {
            SinkError::Fatal(e)
        }
    }
}

/// Another run of the pipeline took over the sink; this one must stop
/// without writing.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "another run of pipeline {pipeline:?} started (writer epoch {theirs}, ours {ours}); stopping so only one run writes"
)]
pub struct Fenced {
    pub pipeline: String,
    pub ours: i64,
    pub theirs: i64,
}

/// A batch or a claim carried a lease counter older than the one that
/// last claimed the partition: the lease moved to another worker.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the lease of {partition} moved to another worker (lease counter {theirs}, ours {ours}); nothing of the batch is committed"
)]
pub struct LeaseLost {
    pub partition: String,
    pub ours: i64,
    pub theirs: i64,
}

/// Reads what a sink holds, for `sluice status`, and nothing else: no DDL,
/// no writer epoch, no clean-up, no file or table created. Safe while a run
/// is writing, and on a pipeline that never ran.
pub trait Inspector {
    fn status(&mut self, asked: &Asked) -> Result<Status>;
}

/// What `sluice status` asks a sink about.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub pipeline: &'a str,
    /// The sink tables the manifest routes to, and how they delete.
    pub targets: &'a [(String, DeleteMode)],
    /// How many rows of each table to show.
    pub sample_rows: usize,
}

/// What a batch did to the sink.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Per sink table.
    pub targets: BTreeMap<String, Rows>,
    pub dead_lettered: u64,
}

/// What became of the rows sent to one sink table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rows {
    pub upserted: u64,
    pub deleted: u64,
    /// Changes older than what the sink already held, so not applied.
    pub stale: u64,
}

impl Applied {
    /// The counts of sink table `name`, created empty.
    pub fn target(&mut self, name: &str) -> &mut Rows {
        if !self.targets.contains_key(name) {
            self.targets.insert(name.to_owned(), Rows::default());
        }
        self.targets.get_mut(name).expect("just inserted")
    }

    /// The counts of every sink table together.
    pub fn rows(&self) -> Rows {
        let mut all = Rows::default();
        for rows in self.targets.values() {
            all += *rows;
        }
        all
    }
}

impl std::ops::AddAssign for Rows {
    fn add_assign(&mut self, other: Rows) {
        self.upserted += other.upserted;
        self.deleted += other.deleted;
        self.stale += other.stale;
    }
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Applied) {
        for (name, rows) in other.targets {
            *self.target(&name) += rows;
        }
        self.dead_lettered += other.dead_lettered;
    }
}

#[derive(Debug, Default)]
pub struct Status {
    /// (partition, position, committed at)
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

impl SinkConfig {
    /// Opens the sink for a writer: creates what is missing and claims the
    /// pipeline's writer epoch, which fences out any older run.
    pub fn open(&self, writer: &Writer) -> Result<Box<dyn Sink>, SinkError> {
        Ok(match self {
            SinkConfig::Sqlite(c) => Box::new(sqlite::SqliteSink::open(c, writer)?),
            SinkConfig::Postgres(c) => Box::new(postgres::PostgresSink::open(c, writer)?),
            SinkConfig::Redshift(c) => Box::new(redshift::RedshiftSink::open(c, writer)?),
            SinkConfig::S3(c) => Box::new(s3::S3Sink::open(c, writer.pipeline)?),
        })
    }

    /// Opens what claims partitions for a coordinated worker; the writing
    /// sink (opened with [`Fencing::Leases`]) must have been opened first.
    pub fn claims(&self, pipeline: &str) -> Result<Box<dyn Claims>, SinkError> {
        Ok(match self {
            SinkConfig::Sqlite(c) => Box::new(sqlite::SqliteClaims::open(c, pipeline)?),
            SinkConfig::Postgres(c) => Box::new(postgres::PostgresClaims::open(c, pipeline)?),
            SinkConfig::Redshift(c) => Box::new(redshift::RedshiftClaims::open(c, pipeline)?),
            SinkConfig::S3(_) => {
                return Err(SinkError::Fatal(anyhow::anyhow!("{self} cannot fence partitions by lease")));
            }
        })
    }

    /// Whether the sink fences each partition by its lease counter, which a
    /// pipeline shared by several workers (`[coordination]`) needs.
    pub fn fences_leases(&self) -> bool {
        matches!(self, SinkConfig::Sqlite(_) | SinkConfig::Postgres(_) | SinkConfig::Redshift(_))
    }

    /// Opens a read-only view of the sink.
    pub fn inspect(&self) -> Result<Box<dyn Inspector>> {
        Ok(match self {
            SinkConfig::Sqlite(c) => Box::new(sqlite::Inspect::open(c)?),
            SinkConfig::Postgres(c) => Box::new(postgres::Inspect::open(c)?),
            SinkConfig::Redshift(c) => Box::new(redshift::Inspect::open(c)?),
            SinkConfig::S3(c) => Box::new(s3::Inspect::open(c)?),
        })
    }

    /// Whether the machine provides what the sink's settings name (files,
    /// environment variables); checked before a run reads, and by `validate`.
    pub fn ready(&self) -> Result<(), NotReady> {
        match self {
            SinkConfig::Sqlite(c) => c.ready(),
            SinkConfig::Postgres(c) => c.ready(),
            SinkConfig::Redshift(_) | SinkConfig::S3(_) => Ok(()),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            SinkConfig::Sqlite(_) | SinkConfig::Postgres(_) | SinkConfig::Redshift(_) => Capabilities {
                transactional: true,
                fenced: true,
                keeps_every_change: false,
                replaces_rows: true,
            },
            SinkConfig::S3(c) => s3::capabilities(c),
        }
    }

    /// Why the sink cannot store a row, if it cannot (a value the database
    /// would refuse). The pipeline asks before it reduces a batch to the
    /// latest change per item, so that a refused change costs its own record
    /// and never hides an earlier valid change to the same item.
    pub fn refuses(&self, row: &Row) -> Option<String> {
        match self {
            SinkConfig::Postgres(_) => postgres::refuses(row),
            SinkConfig::Redshift(c) => redshift::refuses(row, c.super_max_string_bytes),
            SinkConfig::Sqlite(_) | SinkConfig::S3(_) => None,
        }
    }

    /// The longest sink table name the sink keeps apart from others.
    pub fn max_target_bytes(&self) -> usize {
        match self {
            SinkConfig::Postgres(_) => postgres::MAX_NAME_BYTES,
            _ => usize::MAX,
        }
    }

    /// `max_coalesce` when the manifest does not set it.
    pub fn default_max_coalesce(&self) -> usize {
        match self {
            SinkConfig::Redshift(_) => redshift::DEFAULT_MAX_COALESCE,
            _ => crate::record::BatchLimits::default().max_coalesce,
        }
    }

    /// The longest partition name (a file source's path) the sink's
    /// checkpoints and dead letters keep.
    pub fn max_partition_bytes(&self) -> usize {
        match self {
            SinkConfig::Redshift(_) => redshift::MAX_PARTITION_BYTES,
            _ => usize::MAX,
        }
    }
}

impl std::fmt::Display for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkConfig::Sqlite(c) => c.fmt(f),
            SinkConfig::Postgres(c) => c.fmt(f),
            SinkConfig::Redshift(c) => c.fmt(f),
            SinkConfig::S3(c) => c.fmt(f),
        }
    }
}

/// What a sink keeps about one target table.
pub(crate) struct TargetTable {
    pub deletes: DeleteMode,
    /// Columns beyond the [standard ones](columns::STANDARD), in the order guests brought them.
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
    // Every stored row passes here: SIMD validation took it from 5% of the
    // SQLite sink's time to 1.5%.
    simdutf8::basic::from_utf8(raw).ok().filter(|text| !text.contains('\0'))
}

/// One row as a JSON line (Redshift's COPY staging, the S3 sink): keys are
/// column names, documents are embedded as JSON, not as strings;
/// `raw_payload` is the record as the sink keeps it.
pub(crate) fn json_line(row: &Row, extras: &[String], raw_payload: Option<&str>) -> String {
    let text = |t: &str| serde_json::Value::from(t).to_string();
    let members: Vec<String> = columns::names(extras)
        .zip(columns::cells(row, extras))
        .map(|(name, cell)| {
            let value = match cell {
                Cell::Null => "null".to_owned(),
                Cell::Text(t) => text(t),
                Cell::Json(j) => j.to_owned(),
                Cell::Bool(b) => b.to_string(),
                Cell::Int(i) => i.to_string(),
                Cell::Raw(_) => raw_payload.map_or_else(|| "null".to_owned(), text),
            };
            format!("{}:{value}", text(name))
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_the_typed_error_they_carry_not_their_text() {
        let fenced = anyhow::Error::new(Fenced { pipeline: "p".into(), ours: 1, theirs: 2 });
        let fenced = SinkError::from(fenced.context("writing batch 7"));
        assert!(matches!(fenced, SinkError::Fenced(Fenced { ours: 1, theirs: 2, .. })), "{fenced:?}");

        let gave_up = anyhow::anyhow!("connection refused").context(retry::GaveUp("writing batch 7".into()));
        let transient = SinkError::from(gave_up.context("in the sink"));
        assert!(matches!(transient, SinkError::Transient(_)), "{transient:?}");
        assert!(format!("{transient:#}").contains("still failing after"), "{transient:#}");

        let refused = anyhow::anyhow!("permission denied for schema cdc; still failing after a while");
        assert!(matches!(SinkError::from(refused), SinkError::Fatal(_)));
    }

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(has_escaped_nul(r#"{"a":"x\u0000y"}"#));
        assert!(!has_escaped_nul(r#"{"a":"x\\u0000y"}"#));
        assert!(has_escaped_nul(r#"{"a":"x\\\u0000"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\u0001"}"#));
    }
}
