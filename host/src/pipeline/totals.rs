//! What every run of a pipeline did, per table, kept with the checkpoints
//! so `sluice status` can show it: for each DynamoDB table (partition
//! `totals:<table>`) the records read, skipped, faulted and dead-lettered
//! and the time in its transform, committed with the batch they belong to;
//! for each sink table (`applied:<table>`) the rows upserted, deleted and
//! stale and the time in the sink, known only once a batch is committed,
//! so written with the next batch, and once more when the run ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::summary::TableSummary;
use crate::record::{Checkpoint, is_table_name};
use crate::sinks::{Applied, Rows};

const TABLE: &str = "totals:";
const TARGET: &str = "applied:";

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
    pub fn parse(partition: &str, position: &str) -> Option<Totals> {
        if let Some(table) = partition.strip_prefix(TABLE) {
            return Some(Totals::Table(table.to_owned(), serde_json::from_str(position).ok()?));
        }
        let target = partition.strip_prefix(TARGET)?;
        Some(Totals::Target(target.to_owned(), serde_json::from_str(position).ok()?))
    }
}

/// The running totals of a run, and which must still be committed.
#[derive(Default)]
pub(super) struct Ledger {
    tables: BTreeMap<String, TableTotals>,
    targets: BTreeMap<String, TargetTotals>,
    /// Sink tables whose totals changed since they were last sent.
    unsent: Vec<String>,
}

/// Takes the totals out of the committed checkpoints.
pub(super) fn split(committed: &mut Vec<Checkpoint>) -> Ledger {
    let mut ledger = Ledger::default();
    committed.retain(|c| match Totals::parse(&c.partition, &c.position) {
        Some(Totals::Table(name, t)) => {
            ledger.tables.insert(name, t);
            false
        }
        Some(Totals::Target(name, t)) => {
            ledger.targets.insert(name, t);
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
            entries.push(entry(TABLE, name, &*t));
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
        names.iter().map(|name| entry(TARGET, name, &self.targets[name])).collect()
    }
}

fn entry(prefix: &str, name: &str, totals: &impl Serialize) -> Checkpoint {
    let position = serde_json::to_string(totals).expect("totals serialise");
    Checkpoint { partition: format!("{prefix}{name}"), position }
}
