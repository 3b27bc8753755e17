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
//!
//! Workers sharing the pipeline ([coordination]) lease the data files as
//! they lease shards: each reads the files it holds, from the line its
//! claim says, and the load is done when every file's lease has ended.

mod config;
mod layout;
mod progress;
mod reader;

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use config::{Config, HandOver, Section};

use super::{Claimed, Leased, Positions, Source};
use crate::coordination::{Ended, Worker};
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
    /// A coordinated worker's: the files are read as their leases say.
    leases: Option<FileLeases>,
}

struct FileLeases {
    worker: Arc<Worker>,
    ended: tokio::sync::watch::Receiver<Ended>,
    /// Every data file's lease key starts with this: the export's id and '/'.
    prefix: String,
    /// Dropped with the source, which stops the thread handing out files.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ExportSource {
    pub fn open(
        plan: &Plan,
        export: &Config,
        committed: &[Checkpoint],
        leased: Option<Leased>,
    ) -> Result<Self> {
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
        let mut jobs = Vec::new();
        let mut partitions = Vec::new();
        let (mut done_files, mut done_items) = (0, 0);
        for (index, file) in files.into_iter().enumerate() {
            let partition: Arc<str> = format!("{export_id}/{}", file.data_file_s3_key).into();
            partitions.push(partition.clone());
            // A coordinated worker learns each file's position from its claim.
            let at = match leased {
                Some(_) => Position::default(),
                None => positions.get(&*partition).copied().unwrap_or_default(),
            };
            if at.done {
                done_files += 1;
                done_items += file.item_count.unwrap_or(0);
                continue;
            }
            jobs.push(Job {
                index,
                file,
                partition,
                skip_lines: at.line,
                table: table_name.clone(),
                format: format.clone(),
                lease: None,
                stop: Arc::default(),
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
        // A worker sharing the load knows the items of its own files only.
        let items_total = if leased.is_some() { None } else { summary.item_count };
        let progress = Progress::new(partitions.len() as u64, done_files as u64, items_total, done_items);
        let (tx, events) = sync_channel(export.parallel * 2);
        let (queue, queued) = channel::<Job>();
        let store = Arc::new(store);
        let queued = Arc::new(Mutex::new(queued));
        let readers = if leased.is_some() { export.parallel } else { export.parallel.min(open_files) };
        for n in 0..readers {
            let (store, queued, tx) = (store.clone(), queued.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("sluice-export-{n}"))
                .spawn(move || {
                    loop {
                        // The queue's lock is held only while waiting for a job.
                        let Ok(job) = queued.lock().expect("job queue lock").recv() else { return };
                        if !reader::read(&store, &job, &tx) {
                            return;
                        }
                    }
                })
                .context("starting an export reader")?;
        }
        let leases = match leased {
            None => {
                for job in jobs {
                    queue.send(job).expect("the readers wait for jobs");
                }
                None
            }
            Some(leased) => {
                let prefix = format!("{export_id}/");
                let keys = partitions.iter().map(|p| p.to_string()).collect();
                leased.worker.files_listed(&prefix, keys);
                let (stop, stopped) = tokio::sync::oneshot::channel();
                let worker = leased.worker.clone();
                std::thread::Builder::new()
                    .name("sluice-export-leases".into())
                    .spawn(move || hand_out(leased, jobs, queue, tx, stopped))
                    .context("starting the export's lease thread")?;
                Some(FileLeases { ended: worker.ended_leases(), worker, prefix, _stop: stop })
            }
        };
        Ok(ExportSource {
            events,
            pending: None,
            partitions,
            open_files,
            progress,
            batches: 0,
            as_of: summary.as_of,
            leases,
        })
    }

    /// Every data file is loaded: read to its end here or, for workers
    /// sharing the load, its lease ended (its end committed, by any worker).
    fn loaded(&self) -> bool {
        match &self.leases {
            None => self.open_files == 0,
            Some(leases) => {
                let ended = leases.ended.borrow();
                self.partitions.iter().all(|p| ended.contains(&**p))
            }
        }
    }
}

/// Hands the data files this worker holds to the readers, each from the
/// line its claim says, and stops the reading of a file whose lease moved;
/// until the source is dropped (`stop`).
fn hand_out(
    leased: Leased,
    files: Vec<Job>,
    queue: Sender<Job>,
    events: SyncSender<Event>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Leased { worker, claim } = leased;
    let mut held = worker.held();
    let by_key: HashMap<&str, &Job> = files.iter().map(|job| (&*job.partition, job)).collect();
    // Each file being read: its lease counter and its reader's stop flag.
    let mut reading: HashMap<&str, (i64, Arc<AtomicBool>)> = HashMap::new();
    loop {
        let now = held.borrow_and_update().clone();
        reading.retain(|&key, (token, stop)| {
            let keep = now.get(key).is_some_and(|h| h.token == *token);
            // A reader that finished set the flag itself; its lease ended.
            if !keep && !stop.swap(true, Ordering::Relaxed) {
                tracing::info!(file = key, "stopped reading the data file: the lease moved");
            }
            keep
        });
        for (key, holding) in &now {
            // Keys not of this export's files are the stream's shards.
            let Some(&file) = by_key.get(key.as_str()) else { continue };
            if reading.contains_key(key.as_str()) {
                continue;
            }
            let at = match crate::aws::block_on(claim(key, holding.token)) {
                Ok(Ok(Claimed::Position(c))) => {
                    c.and_then(|c| serde_json::from_str::<Position>(&c.position).ok()).unwrap_or_default()
                }
                Ok(Ok(Claimed::Lost(why))) => {
                    tracing::warn!(file = key, "not reading: {why}");
                    continue;
                }
                Ok(Err(why)) => {
                    let _ = events.send(Event::Failed(format!("claiming data file {key}: {why:#}")));
                    return;
                }
                Err(_) => {
                    let _ = events
                        .send(Event::Failed(format!("claiming data file {key}: the claims thread stopped")));
                    return;
                }
            };
            if at.done {
                // Loaded by a holder that stopped before marking the lease.
                worker.ended(key);
                continue;
            }
            tracing::info!(
                file = key,
                lease = holding.token,
                line = at.line,
                "reading data file under its lease"
            );
            let stop = Arc::new(AtomicBool::new(false));
            let job =
                Job { skip_lines: at.line, lease: Some(holding.token), stop: stop.clone(), ..file.clone() };
            if queue.send(job).is_err() {
                return;
            }
            reading.insert(&file.partition, (holding.token, stop));
        }
        let changed = crate::aws::block_on(async {
            tokio::select! {
                changed = held.changed() => Some(changed),
                _ = &mut stop => None,
            }
        });
        match changed {
            Some(Ok(())) => {}
            Some(Err(_)) => {
                let _ = events.send(Event::Failed("the lease table's worker stopped".into()));
                return;
            }
            None => return,
        }
    }
}

impl Source for ExportSource {
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>> {
        if self.loaded() {
            self.progress.finish();
            return Ok(None);
        }
        let deadline = Instant::now() + limits.max_wait;
        let mut batch = Batch::default();
        let mut positions = Positions::new();
        while batch.records.len() < limits.max_records
            && batch.bytes < limits.max_bytes
            && (self.open_files > 0 || self.leases.is_some())
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
                Event::Lines { file, last_line, mut records, lease } => {
                    // Cut the chunk where the batch is full; the rest opens the next batch.
                    let room = limits.max_records - batch.records.len();
                    let last_line = if records.len() > room {
                        let rest = records.split_off(room);
                        let taken = records.last().map_or(0, |r| r.sequence.parse().expect("line numbers"));
                        self.pending = Some(Event::Lines { file, last_line, records: rest, lease });
                        taken
                    } else {
                        last_line
                    };
                    let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
                    self.progress.read(records.len() as u64, bytes as u64);
                    batch.bytes += bytes;
                    batch.records.extend(records);
                    positions.set(&self.partitions[file], Position { line: last_line, done: false }, lease);
                }
                Event::Done { file, lines, lease } => {
                    // A file whose lease came back is read, and done, again.
                    self.open_files = self.open_files.saturating_sub(1);
                    self.progress.file_done();
                    positions.set(&self.partitions[file], Position { line: lines, done: true }, lease);
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

    fn committed(&mut self, checkpoints: &[Checkpoint]) {
        let Some(leases) = &self.leases else { return };
        for c in checkpoints.iter().filter(|c| c.partition.starts_with(&leases.prefix)) {
            match serde_json::from_str::<Position>(&c.position) {
                Ok(p) if p.done => leases.worker.ended(&c.partition),
                Ok(p) => leases.worker.committed(&c.partition, &p.line.to_string()),
                Err(_) => {}
            }
        }
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
