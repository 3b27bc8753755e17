//! A DynamoDB export in S3 (or a local copy of one), loaded like a stream.
//!
//! `layout.rs` reads the two manifests, [`ObjectStore`] opens files locally
//! or in S3, and `reader.rs` streams each data file on one of `parallel` threads
//! into a bounded channel. Every item is ordered at the export's
//! `exportTime` (incremental exports: at its own write time), so a backfill
//! never overwrites a newer streamed change.
//!
//! Each data file is a stream of its own in the checkpoints: the last line
//! committed and whether the file is done. A resumed load skips done files
//! and the committed lines of the others.

mod config;
mod layout;
mod progress;
mod reader;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use config::{Config, HandOver, Section};

use super::{Positions, Source};
use crate::manifest::Plan;
use crate::objects::ObjectStore;
use crate::record::{Batch, BatchLimits, Checkpoint, ExportInfo};
use progress::Progress;
use reader::{Event, Job};

/// A data file's position, as committed in the sink.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Position {
    /// The last line whose record is committed.
    line: u64,
    /// The file was read to its end and verified.
    #[serde(default)]
    done: bool,
}

/// The last line a committed position covers.
pub(super) fn last_line(position: &str) -> Option<String> {
    serde_json::from_str::<Position>(position).ok().map(|p| p.line.to_string())
}

/// Whether a committed position is a data file read to its end; `None`
/// if it is not a data file's.
pub(super) fn is_done(position: &str) -> Option<bool> {
    serde_json::from_str::<Position>(position).ok().map(|p| p.done)
}

pub struct ExportSource {
    events: Receiver<Event>,
    /// The rest of a chunk that did not fit in the last batch.
    pending: Option<Event>,
    /// Each file's partition name, by index.
    partitions: Vec<Arc<str>>,
    /// Files not yet read to their end.
    open_files: usize,
    progress: Progress,
    batches: u64,
    /// When the export shows the table; the hand-over starts the stream
    /// from here, minus a margin.
    pub as_of: SystemTime,
}

impl ExportSource {
    pub fn open(plan: &Plan, export: &Config, committed: &[Checkpoint]) -> Result<Self> {
        let store = ObjectStore::open(&export.location)?;
        let export_id = store.folder_name();
        let summary =
            layout::summary(&read(&store, "manifest-summary.json")?, &export_id).with_context(|| {
                format!(
                    "reading {} (is path the export's folder, …/AWSDynamoDB/<ExportId>/?)",
                    store.describe("manifest-summary.json")
                )
            })?;
        let files = layout::data_files(&read(&store, &summary.files_key)?, &export_id)
            .with_context(|| format!("reading {}", store.describe(&summary.files_key)))?;

        let Some(table) = export.table.clone().or_else(|| summary.table.clone()) else {
            bail!("manifest-summary.json names no table (no tableArn): set the export source's `table`");
        };
        let Some(route) = plan.route(&table) else {
            bail!(
                "the export is of table {table:?}, which has no [[tables]] entry and the manifest has no [defaults]"
            );
        };
        if !summary.incremental && route.keys.is_empty() {
            bail!(
                "a full export's items carry no key: list the key attributes of table {table:?} in its \
                 [[tables]] entry, e.g. keys = [\"pk\", \"sk\"] (the seed's DynamoDbTableKeys)"
            );
        }
        let table_name: Arc<str> = table.as_str().into();
        let format =
            Arc::new(ExportInfo { export_micros: summary.as_of_micros, incremental: summary.incremental });

        let positions: HashMap<&str, Position> = committed
            .iter()
            .filter_map(|c| Some((c.partition.as_str(), serde_json::from_str(&c.position).ok()?)))
            .collect();
        let mut jobs = VecDeque::new();
        let mut partitions = Vec::new();
        let (mut done_files, mut done_items) = (0, 0);
        for (index, file) in files.into_iter().enumerate() {
            let partition: Arc<str> = format!("{export_id}/{}", file.data_file_s3_key).into();
            partitions.push(partition.clone());
            let at = positions.get(&*partition).copied().unwrap_or_default();
            if at.done {
                done_files += 1;
                done_items += file.item_count.unwrap_or(0);
                continue;
            }
            jobs.push_back(Job {
                index,
                file,
                partition,
                skip_lines: at.line,
                table: table_name.clone(),
                format: format.clone(),
            });
        }
        let kind = if summary.incremental { "incremental" } else { "full" };
        tracing::info!(
            export = summary.export_arn,
            table,
            files = partitions.len(),
            items = summary.item_count,
            as_of = %humantime::format_rfc3339_millis(summary.as_of),
            "loading a {kind} export"
        );
        if done_files > 0 {
            tracing::info!("{done_files} of {} data files were loaded by an earlier run", partitions.len());
        }

        let open_files = jobs.len();
        let progress =
            Progress::new(partitions.len() as u64, done_files as u64, summary.item_count, done_items);
        let (tx, events) = sync_channel(export.parallel * 2);
        let store = Arc::new(store);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..export.parallel.min(open_files) {
            let (store, jobs, tx) = (store.clone(), jobs.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("sluice-export-{n}"))
                .spawn(move || {
                    while let Some(job) = jobs.lock().expect("job queue lock").pop_front() {
                        if !reader::read(&store, &job, &tx) {
                            return;
                        }
                    }
                })
                .context("starting an export reader")?;
        }
        Ok(ExportSource {
            events,
            pending: None,
            partitions,
            open_files,
            progress,
            batches: 0,
            as_of: summary.as_of,
        })
    }
}

impl Source for ExportSource {
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>> {
        if self.open_files == 0 {
            self.progress.finish();
            return Ok(None);
        }
        let deadline = Instant::now() + limits.max_wait;
        let mut batch = Batch::default();
        let mut positions = Positions::new();
        while batch.records.len() < limits.max_records
            && batch.bytes < limits.max_bytes
            && self.open_files > 0
        {
            let event = match self.pending.take() {
                Some(event) => event,
                None => match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => bail!("the export readers stopped"),
                },
            };
            match event {
                Event::Lines { file, last_line, mut records } => {
                    // Cut the chunk where the batch is full; the rest opens the next batch.
                    let room = limits.max_records - batch.records.len();
                    let last_line = if records.len() > room {
                        let rest = records.split_off(room);
                        let taken = records.last().map_or(0, |r| r.sequence.parse().expect("line numbers"));
                        self.pending = Some(Event::Lines { file, last_line, records: rest });
                        taken
                    } else {
                        last_line
                    };
                    let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
                    self.progress.read(records.len() as u64, bytes as u64);
                    batch.bytes += bytes;
                    batch.records.extend(records);
                    positions.set(&self.partitions[file], Position { line: last_line, done: false }, None);
                }
                Event::Done { file, lines } => {
                    self.open_files -= 1;
                    self.progress.file_done();
                    positions.set(&self.partitions[file], Position { line: lines, done: true }, None);
                }
                Event::Failed(why) => {
                    self.progress.abandon();
                    bail!("{why}");
                }
            }
        }
        if batch.records.is_empty() && positions.is_empty() {
            return Ok(Some(batch));
        }
        positions.seal(&mut batch, &mut self.batches);
        Ok(Some(batch))
    }
}

/// A manifest file, which must exist.
fn read(store: &ObjectStore, key: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    store
        .reader(key, None)?
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", store.describe(key)))?;
    Ok(bytes)
}
