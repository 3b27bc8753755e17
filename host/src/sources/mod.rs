//! Sources read records and cut them into batches, each with the positions
//! reached after it. A source knows nothing of guests or sinks: it is handed
//! the checkpoints the sink committed and resumes right after them, and is
//! told when later ones are committed.
//!
//! Each source is a folder: `config.rs` (its manifest section, checked and
//! resolved) beside the source itself. Adding one means a folder, a variant
//! of [`SourceConfig`], and its `type` in `manifest/validate.rs`.

mod changes;
pub mod export;
pub mod file;
mod handover;
pub mod kinesis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use serde::Serialize;

pub use changes::ChangeRecords;
use export::ExportSource;
use file::FileSource;
use handover::ExportThenStream;
use kinesis::{KinesisSource, Start};

use crate::coordination::Worker;
use crate::manifest::Plan;
use crate::record::{Batch, BatchLimits, Checkpoint, SourceRecord};

pub trait Source: Send {
    /// The next batch, cut at the first limit reached. An empty batch (no
    /// records, no checkpoints) means nothing arrived in `max_wait`; `None`
    /// means the source is done: a file read to its end, or a stream read
    /// to its tip when asked to stop there.
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>>;

    /// The sink committed these checkpoints.
    fn committed(&mut self, _checkpoints: &[Checkpoint]) {}
}

/// How a worker of a coordinated pipeline reads: only the partitions whose
/// leases it holds, each from where its claim says.
#[derive(Clone)]
pub struct Leased {
    pub worker: Arc<Worker>,
    pub claim: Claim,
}

/// Claims a partition under a lease counter: fences out older holders and
/// reads the committed position (the sink's `Claims`, from the pipeline),
/// answering on the returned channel; a dropped answer means it failed.
pub type Claim = Arc<dyn Fn(&str, i64) -> tokio::sync::oneshot::Receiver<Result<Claimed>> + Send + Sync>;

pub enum Claimed {
    /// The committed position, if any.
    Position(Option<Checkpoint>),
    /// A newer lease counter already claimed the partition, and why.
    Lost(String),
}

/// The source a manifest names, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    File(file::Config),
    Kinesis(kinesis::Config),
    Export(export::Config),
}

impl std::fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceConfig::File(c) => c.fmt(f),
            SourceConfig::Kinesis(c) => c.fmt(f),
            SourceConfig::Export(c) => c.fmt(f),
        }
    }
}

impl SourceConfig {
    /// Whether the machine provides what the source's settings name (a
    /// local file or folder); checked before a run reads, and by `validate`.
    pub fn ready(&self) -> Result<(), crate::manifest::NotReady> {
        match self {
            SourceConfig::File(c) => c.ready(),
            SourceConfig::Export(c) => c.ready(),
            SourceConfig::Kinesis(_) => Ok(()),
        }
    }
}

/// Opens the source a plan names, resuming from committed checkpoints.
/// `exit_when_caught_up` makes an endless source (a stream) end once it
/// has read everything there is; `leased`, a coordinated worker's, makes
/// it read only what the worker holds.
pub fn open(
    plan: &Plan,
    committed: &[Checkpoint],
    exit_when_caught_up: bool,
    leased: Option<Leased>,
) -> Result<Box<dyn Source>> {
    open_as(plan, &plan.source, committed, exit_when_caught_up, leased)
}

/// Where `sluice replay` starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The source's beginning: a file's first line, every data file of an
    /// export, the oldest record a stream retains.
    Start,
    /// A stream's records from this time on (earlier ones are not read);
    /// other sources are read from their beginning.
    Time(SystemTime),
}

/// Opens the source a plan names from `from`, ignoring checkpoints; it ends
/// once read to its end or its tip.
pub fn open_for_replay(plan: &Plan, from: ReplayFrom) -> Result<Box<dyn Source>> {
    let mut source = plan.source.clone();
    if let SourceConfig::Kinesis(k) = &mut source {
        k.start = match from {
            ReplayFrom::Start => Start::TrimHorizon,
            ReplayFrom::Time(t) => Start::AtTimestamp(t),
        };
    }
    open_as(plan, &source, &[], true, None)
}

fn open_as(
    plan: &Plan,
    source: &SourceConfig,
    committed: &[Checkpoint],
    exit_when_caught_up: bool,
    leased: Option<Leased>,
) -> Result<Box<dyn Source>> {
    match source {
        SourceConfig::File(f) => {
            let resume = committed.iter().find(|c| c.partition == f.written);
            Ok(Box::new(FileSource::open(&f.path, &f.written, resume)?))
        }
        SourceConfig::Kinesis(k) => {
            Ok(Box::new(KinesisSource::open(k, committed, exit_when_caught_up, leased)?))
        }
        SourceConfig::Export(e) => {
            let export = ExportSource::open(plan, e, committed, leased.clone())?;
            Ok(match &e.then {
                Some(then) => Box::new(ExportThenStream::new(
                    export,
                    then.clone(),
                    committed,
                    exit_when_caught_up,
                    leased,
                )),
                None => Box::new(export),
            })
        }
    }
}

/// How far a committed position is from the end of its partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behind {
    /// Of a file: bytes not read yet.
    Bytes(u64),
    /// Of a shard: Kinesis' `MillisBehindLatest` after the position.
    Milliseconds(i64),
    /// Of an export's data file: read to its end or not.
    Done(bool),
    /// Not known, and why.
    Unknown(String),
}

/// How far each committed position is behind the end of its partition, for
/// `sluice status`. Reads only; a stream is asked one record past each position.
pub fn behind(plan: &Plan, committed: &[Checkpoint]) -> Vec<(String, Behind)> {
    let kinesis = |k: &kinesis::Config| match kinesis::behind(k, committed) {
        Ok(lags) => lags
            .into_iter()
            .map(|(p, lag)| (p, lag.map_or_else(Behind::Unknown, Behind::Milliseconds)))
            .collect(),
        Err(e) => vec![(k.stream_arn.clone(), Behind::Unknown(format!("{e:#}")))],
    };
    match &plan.source {
        SourceConfig::File(f) => committed
            .iter()
            .filter(|c| c.partition == f.written)
            .map(|c| {
                let left = file::unread_bytes(&f.path, &c.position);
                (c.partition.clone(), left.map_or_else(|e| Behind::Unknown(format!("{e:#}")), Behind::Bytes))
            })
            .collect(),
        SourceConfig::Kinesis(k) => kinesis(k),
        SourceConfig::Export(e) => {
            let mut all: Vec<(String, Behind)> = committed
                .iter()
                .filter_map(|c| Some((c.partition.clone(), Behind::Done(export::is_done(&c.position)?))))
                .collect();
            if let Some(then) = &e.then {
                all.extend(kinesis(&then.kinesis));
            }
            all
        }
    }
}

/// How far a pipeline's runs committed each partition: what a replay reads
/// up to, so that it rewrites rows and leaves the rest to the next run.
pub struct Reached(HashMap<String, String>);

impl Reached {
    pub fn new(source: &SourceConfig, committed: &[Checkpoint]) -> Self {
        let last = |position: &str| match source {
            SourceConfig::File(_) => file::last_line(position),
            SourceConfig::Kinesis(_) => kinesis::last_sequence(position),
            // An export's data files, then the stream's shards.
            SourceConfig::Export(_) => {
                export::last_line(position).or_else(|| kinesis::last_sequence(position))
            }
        };
        Reached(committed.iter().filter_map(|c| Some((c.partition.clone(), last(&c.position)?))).collect())
    }

    /// Whether the record was committed by a run: its partition's committed
    /// position is at or after it.
    pub fn holds(&self, record: &SourceRecord) -> bool {
        let at = &record.sequence;
        self.0.get(&*record.partition).is_some_and(|last| (at.len(), at) <= (last.len(), last))
    }
}

/// The last position reached in each partition of a batch being cut, for
/// the sources that read several at once (shards, data files).
/// Each with the lease counter its partition is read under, if coordinated.
struct Positions<P>(Vec<(Arc<str>, P, Option<i64>)>);

impl<P: Serialize> Positions<P> {
    fn new() -> Self {
        Positions(Vec::new())
    }

    fn set(&mut self, partition: &Arc<str>, position: P, lease: Option<i64>) {
        match self.0.iter_mut().find(|(s, _, _)| s == partition) {
            Some((_, p, l)) => (*p, *l) = (position, lease),
            None => self.0.push((partition.clone(), position, lease)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Numbers the batch (`batches` counts them) and adds the positions as
    /// its checkpoints.
    fn seal(self, batch: &mut Batch, batches: &mut u64) {
        *batches += 1;
        batch.number = *batches;
        for (partition, position, lease) in self.0 {
            let position = serde_json::to_string(&position).expect("positions serialise");
            batch.checkpoints.push(Checkpoint { partition: partition.to_string(), position, lease });
        }
    }
}

/// Strips a line's ending; true if nothing but whitespace is left (a blank
/// line: skipped, though still counted in line numbers).
fn blank_after_trimming(line: &mut Vec<u8>) -> bool {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    line.iter().all(u8::is_ascii_whitespace)
}
