//! What every run of a pipeline did, per table, kept with the checkpoints
//! so `sluice status` can show it: for each DynamoDB table (partition
//! `totals:<table>`) the records read, skipped, faulted and dead-lettered
//! and the time in its transform, committed with the batch they belong to;
//! for each sink table (`applied:<table>`) the rows upserted, deleted and
//! stale and the time in the sink, known only once a batch is committed,
//! so written with the next batch, and once more when the run ends.
//!
//! The workers of a coordinated pipeline write at once, so each keeps its
//! own entries (`totals:<table>@<worker>`), which `status` adds up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::summary::TableSummary;
use crate::record::{Checkpoint, is_table_name};
use crate::sinks::{Applied, Rows};

const TABLE: &str = "totals:";
const TARGET: &str = "applied:";
/// Between a table's name and the worker whose totals an entry holds.
const WORKER: char = '@';

/// One DynamoDB table's records, over every run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableTotals {
    pub read: u64,
    pub skipped: u64,
    pub guest_faults: u64,
    pub dead_lettered: u64,
    pub transform_seconds: f64,
}

/// One sink table's rows, over every run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetTotals {
    pub upserted: u64,
    pub deleted: u64,
    pub stale: u64,
    /// The time of the batches that wrote to it (a batch touching several
    /// tables counts for each).
    pub sink_seconds: f64,
}

/// What a checkpoint's partition and position hold, if they are totals.
pub enum Totals {
    Table(String, TableTotals),
    Target(String, TargetTotals),
}

impl Totals {
    /// Reads an entry, whichever worker wrote it.
    pub fn parse(partition: &str, position: &str) -> Option<Totals> {
        Some(parse(partition, position)?.1)
    }

    /// Adds another entry of the same table's.
    pub fn add_to(
        self,
        tables: &mut BTreeMap<String, TableTotals>,
        targets: &mut BTreeMap<String, TargetTotals>,
    ) {
        match self {
            Totals::Table(name, t) => *tables.entry(name).or_default() += t,
            Totals::Target(name, t) => *targets.entry(name).or_default() += t,
        }
    }
}

/// An entry's totals and the worker that wrote them, if any.
fn parse<'a>(partition: &'a str, position: &str) -> Option<(Option<&'a str>, Totals)> {
    let (kind, rest) = match partition.strip_prefix(TABLE) {
        Some(rest) => (TABLE, rest),
        None => (TARGET, partition.strip_prefix(TARGET)?),
    };
    let (name, worker) = match rest.split_once(WORKER) {
        Some((name, worker)) => (name.to_owned(), Some(worker)),
        None => (rest.to_owned(), None),
    };
    let totals = match kind {
        TABLE => Totals::Table(name, serde_json::from_str(position).ok()?),
        _ => Totals::Target(name, serde_json::from_str(position).ok()?),
    };
    Some((worker, totals))
}

impl std::ops::AddAssign for TableTotals {
    fn add_assign(&mut self, o: TableTotals) {
        self.read += o.read;
        self.skipped += o.skipped;
        self.guest_faults += o.guest_faults;
        self.dead_lettered += o.dead_lettered;
        self.transform_seconds += o.transform_seconds;
    }
}

impl std::ops::AddAssign for TargetTotals {
    fn add_assign(&mut self, o: TargetTotals) {
        self.upserted += o.upserted;
        self.deleted += o.deleted;
        self.stale += o.stale;
        self.sink_seconds += o.sink_seconds;
    }
}

/// The running totals of a run, and which must still be committed.
#[derive(Default)]
pub(super) struct Ledger {
    tables: BTreeMap<String, TableTotals>,
    targets: BTreeMap<String, TargetTotals>,
    /// Sink tables whose totals changed since they were last sent.
    unsent: Vec<String>,
    /// The coordinated worker whose entries these are.
    worker: Option<String>,
}

/// Takes the totals out of the committed checkpoints, keeping those of
/// `worker` (a coordinated worker's; `None`: the pipeline's).
pub(super) fn split(committed: &mut Vec<Checkpoint>, worker: Option<&str>) -> Ledger {
    let mut ledger = Ledger { worker: worker.map(str::to_owned), ..Ledger::default() };
    committed.retain(|c| match parse(&c.partition, &c.position) {
        Some((by, totals)) => {
            if by == worker {
                totals.add_to(&mut ledger.tables, &mut ledger.targets);
            }
            false
        }
        None => !is_totals(&c.partition),
    });
    ledger
}

/// Whether a checkpoint's partition holds totals rather than a position.
pub(super) fn is_totals(partition: &str) -> bool {
    partition.starts_with(TABLE) || partition.starts_with(TARGET)
}

impl Ledger {
    /// Adds a batch's per-table figures and returns the entries to commit
    /// with it: those tables' totals, and the sink tables' that changed
    /// since they were last sent.
    pub fn batch(&mut self, tables: &[(Arc<str>, TableSummary)]) -> Vec<Checkpoint> {
        let mut entries = Vec::new();
        for (name, s) in tables.iter().filter(|(name, _)| is_table_name(name)) {
            let t = self.tables.entry(name.to_string()).or_default();
            t.read += s.read;
            t.skipped += s.skipped;
            t.guest_faults += s.guest_faults;
            t.dead_lettered += s.dead_lettered;
            t.transform_seconds += s.in_transform.as_secs_f64();
            entries.push(entry(&self.worker, TABLE, name, &*t));
        }
        entries.extend(self.unsent());
        entries
    }

    /// A batch was committed: what it did to each sink table.
    pub fn applied(&mut self, applied: &Applied, took: Duration) {
        for (name, rows) in &applied.targets {
            let Rows { upserted, deleted, stale } = *rows;
            let t = self.targets.entry(name.clone()).or_default();
            t.upserted += upserted;
            t.deleted += deleted;
            t.stale += stale;
            t.sink_seconds += took.as_secs_f64();
            if !self.unsent.contains(name) {
                self.unsent.push(name.clone());
            }
        }
    }

    /// The sink tables' totals not yet committed, to write when the run ends.
    pub fn unsent(&mut self) -> Vec<Checkpoint> {
        let names = std::mem::take(&mut self.unsent);
        names.iter().map(|name| entry(&self.worker, TARGET, name, &self.targets[name])).collect()
    }
}

/// An entry to commit; a coordinated worker's carries its name.
fn entry(worker: &Option<String>, prefix: &str, name: &str, totals: &impl Serialize) -> Checkpoint {
    let position = serde_json::to_string(totals).expect("totals serialise");
    let partition = match worker {
        Some(worker) => format!("{prefix}{name}{WORKER}{worker}"),
        None => format!("{prefix}{name}"),
    };
    Checkpoint { partition, position, lease: None }
}
