//! `sluice replay`: the source read again from a chosen point up to where
//! the pipeline's runs committed, through the transforms the manifest names
//! now, rewriting the rows they make.
//!
//! A replay commits no source position, so the next run resumes where the
//! last one stopped and nothing is read twice or skipped. It claims the
//! pipeline's writer epoch like a run (a run still writing stops, fenced),
//! and opens the sink with [`SameEvent::Rewrites`](crate::sinks::SameEvent):
//! the ordering guard still refuses older changes, but a change the stored
//! row already holds now replaces it, which is the point of a replay.

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use anyhow::{Result, bail};

use crate::manifest::Plan;
use crate::record::{Batch, Checkpoint, SinkBatch};
use crate::sources::{Reached, ReplayFrom};

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The DynamoDB tables whose rows are rewritten; empty for all.
    pub tables: Vec<String>,
    pub from: ReplayFrom,
}

/// What a replay lets through.
pub(super) struct Bounds {
    reached: Reached,
    tables: HashSet<String>,
    /// Changes before this time (microseconds) are not rewritten.
    from_micros: u64,
}

impl Replay {
    /// Refuses what a replay cannot do, before anything is opened.
    pub(super) fn check(&self, plan: &Plan) -> Result<()> {
        if !plan.sink.capabilities().replaces_rows {
            bail!(
                "the sink ({}) writes files of changes and cannot rewrite a row in place, so there is \
                 nothing to replay into: run the pipeline under a new name into a new folder instead",
                plan.sink
            );
        }
        for table in &self.tables {
            if plan.route(table).is_none() {
                bail!("--table {table}: the manifest has no [[tables]] entry for it and no [defaults]");
            }
        }
        Ok(())
    }

    pub(super) fn bounds(&self, plan: &Plan, committed: &[Checkpoint]) -> Bounds {
        if committed.is_empty() {
            tracing::warn!(
                pipeline = plan.name,
                "no run of this pipeline committed anything yet: nothing to replay"
            );
        }
        let from_micros = match self.from {
            ReplayFrom::Start => 0,
            ReplayFrom::Time(t) => t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
        };
        Bounds {
            reached: Reached::new(&plan.source, committed),
            tables: self.tables.iter().cloned().collect(),
            from_micros,
        }
    }
}

impl Bounds {
    pub fn replays(&self, table: &str) -> bool {
        self.tables.is_empty() || self.tables.contains(table)
    }

    /// Keeps the records a replay rewrites: committed by a run, of the
    /// tables asked for (a record whose table cannot be read was
    /// dead-lettered by the run). Returns how many it passed over.
    pub fn records(&self, batch: &mut Batch) -> u64 {
        let before = batch.records.len();
        batch.records.retain(|r| self.reached.holds(r) && r.table.as_deref().is_ok_and(|t| self.replays(t)));
        (before - batch.records.len()) as u64
    }

    /// Drops rows of changes made before `--from`; returns how many.
    pub fn rows(&self, batch: &mut SinkBatch) -> u64 {
        let before = batch.rows.len();
        batch.rows.retain(|r| r.change.order.micros >= self.from_micros);
        (before - batch.rows.len()) as u64
    }
}
