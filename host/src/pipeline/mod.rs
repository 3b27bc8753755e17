//! The only room that wires the others together. A record's path:
//!
//! 1. a [source](crate::sources) cuts records into a batch with positions;
//! 2. `router.rs` picks each record's table route and guest instance;
//! 3. `rows.rs` runs the guests, turning outcomes into rows and dead
//!    letters, checked by `checks.rs`, then `dedupe.rs` keeps the latest
//!    change per item (or every distinct change, for a sink that keeps them);
//! 4. a [sink](crate::sinks) writes rows, dead letters and checkpoints in one
//!    transaction, on its own thread, while the next batch is transformed.
//!
//! Between 3 and 4 one batch waits (`coalesce.rs`); batches transformed
//! while the sink is busy are merged into it up to `max_coalesce` records
//! (group commit), then the reading waits, so a slow sink gets larger
//! transactions and slows the reading instead of growing memory. A batch
//! cut from a backlog waits for more even while the sink is idle, as long
//! as a slow commit takes, so catching up on a warehouse starts with a full
//! transaction. The sink thread reports each commit back, so a source can
//! act on what is committed (Kinesis starts a child shard only once its
//! parents' ends are committed).

mod checks;
mod coalesce;
mod dedupe;
mod replay;
mod router;
mod rows;
mod summary;
mod totals;
mod transforms;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use replay::Replay;
pub use summary::Summary;
pub use totals::{TableTotals, TargetTotals, Totals};
pub use transforms::stamped_table;

use crate::coordination::Worker;
use crate::guest::GuestRuntime;
use crate::manifest::{Field, Plan, RunLimits};
use crate::record::{Checkpoint, SinkBatch};
use crate::sinks::{self, Applied, Fencing, SameEvent, SinkError, Writer};
use crate::sources::{self, Claimed, Leased};
use crate::telemetry::{
    self,
    metrics::{Kind, Stage, Table, health, metrics},
};
use coalesce::{Slot, WriterGone};
use replay::Bounds;
use router::Router;
use transforms::Transforms;

/// How often a long run logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How a run ends, besides its source running dry.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Set (by SIGINT or SIGTERM) to finish the current batch and stop.
    pub stop: Arc<AtomicBool>,
    /// Stop a stream once every shard is read to its tip and committed.
    pub exit_when_caught_up: bool,
    /// Rewrite what earlier runs committed instead (`sluice replay`).
    pub replay: Option<Replay>,
    /// Serve `/metrics` and `/health` here (else where `[telemetry]` says).
    pub metrics_addr: Option<SocketAddr>,
    /// This process's worker in the lease table, when `[coordination]`
    /// shares the stream: the run reads only the shards it holds.
    pub worker: Option<Arc<Worker>>,
}

/// The run stopped before committing a batch that took its dead letters
/// past `[run]`'s limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped before batch {batch}: it would bring this run's dead letters to {dead} of {read} records read, \
     past {limit}; nothing of the batch is committed, so after fixing the cause a run resumes with it"
)]
pub struct TooManyDeadLetters {
    pub batch: u64,
    pub dead: u64,
    pub read: u64,
    pub limit: String,
}

/// A batch the sink thread wrote, reported back.
struct Written {
    /// The positions reached, for the source.
    reached: Vec<Checkpoint>,
    applied: Applied,
    took: Duration,
}

/// A batch on its way to the sink thread.
struct Pending {
    batch: SinkBatch,
    /// The positions to report to the source once it is written: its
    /// checkpoints, which a replay reports but does not store.
    reached: Vec<Checkpoint>,
    /// When its stream changes were made, for the commit lag.
    change_micros: Vec<u64>,
    /// A size limit cut it: the source had more records ready.
    backlog: bool,
}

/// All that a run checks before it reads, and all `sluice validate` does:
/// the files and variables the source and sink name, and every listed
/// table's guest started with its settings (and, unless `offline`, its
/// join's access to S3). Writes nothing.
pub fn check(plan: &Plan, runtime: &mut GuestRuntime, offline: bool) -> Result<()> {
    let mut router = match offline {
        true => Router::offline(plan, runtime),
        false => Router::new(plan, runtime),
    };
    Ok(preflight(plan, &mut router)?)
}

/// Everything found wrong before a run reads, each at its manifest line.
#[derive(Debug, thiserror::Error)]
pub struct Problems(Vec<anyhow::Error>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() > 1 {
            writeln!(f, "{} problems:", self.0.len())?;
        }
        let each: Vec<String> = self.0.iter().map(|e| format!("{e:#}")).collect();
        f.write_str(&each.join("\n"))
    }
}

fn preflight(plan: &Plan, router: &mut Router) -> Result<(), Problems> {
    let mut problems: Vec<anyhow::Error> = Vec::new();
    if let Err(n) = plan.source.ready() {
        problems.push(plan.error_at(Field::Source(n.field), &n).into());
    }
    if let Err(n) = plan.sink.ready() {
        problems.push(plan.error_at(Field::Sink(n.field), &n).into());
    }
    problems.extend(router.start_listed());
    if problems.is_empty() { Ok(()) } else { Err(Problems(problems)) }
}

/// Runs a pipeline until its source is exhausted or it is told to stop.
pub fn run(plan: &Plan, runtime: &mut GuestRuntime, options: &RunOptions) -> Result<Summary> {
    let started = Instant::now();
    let mut router = Router::new(plan, runtime);
    preflight(plan, &mut router)?; // what `check` does, before the sink is touched
    let health = health();
    health.stall_after(plan.telemetry.stall_after);
    health.stops_with(options.stop.clone());
    health.beat();
    if let Some(addr) = options.metrics_addr.or(plan.telemetry.metrics_addr) {
        telemetry::serve(addr)?;
    }
    if let Some(replay) = &options.replay {
        replay.check(plan)?;
    }
    loop {
        match run_once(plan, &mut router, options, started) {
            // Another worker took a shard's lease while a batch holding its
            // records was on its way: nothing of that batch is committed, so
            // the run starts again from the sink's checkpoints, reading only
            // the shards this worker still holds. (Told to stop meanwhile,
            // the new run ends at once: the batch was the new holder's.)
            Err(e) if options.worker.is_some() && lease_lost(&e) => {
                tracing::warn!("{e:#}; reading on from what is committed");
            }
            done => return done,
        }
    }
}

fn lease_lost(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<SinkError>(), Some(SinkError::LeaseLost(_)))
}

/// Opens the sink and the source and runs the batches through, once.
fn run_once(plan: &Plan, router: &mut Router, options: &RunOptions, started: Instant) -> Result<Summary> {
    let health = health();
    let same_event = if options.replay.is_some() { SameEvent::Rewrites } else { SameEvent::Keeps };
    let fencing = if options.worker.is_some() { Fencing::Leases } else { Fencing::Epoch };
    let targets = plan.targets();
    let opening = Instant::now();
    let mut sink =
        plan.sink.open(&Writer { pipeline: &plan.name, targets: &targets, same_event, fencing })?;
    let (mut committed, mut transforms) =
        transforms::split(sink.checkpoints()?, options.replay.is_some(), &plan.path);
    // What a commit costs, until one is timed.
    let start_up = opening.elapsed();
    let mut ledger = totals::split(&mut committed, options.worker.as_ref().map(|w| w.id()));
    // A replay's work is not a run's: it adds nothing to the totals.
    let keep_totals = options.replay.is_none();
    let (mut source, bounds) = match &options.replay {
        None => (sources::open(plan, &committed, options.exit_when_caught_up, leased(plan, options)?)?, None),
        Some(replay) => (sources::open_for_replay(plan, replay.from)?, Some(replay.bounds(plan, &committed))),
    };
    compare_transforms(router, &mut transforms, bounds.as_ref());

    let mut summary = Summary::new(&plan.name);
    // Only a transactional sink merges batches: the S3 sink names its
    // objects after the batches it was given.
    let capabilities = plan.sink.capabilities();
    let max_coalesce = if capabilities.transactional { plan.batch.max_coalesce } else { 0 };
    let slot = Slot::new(max_coalesce, plan.batch.max_wait, capabilities.keeps_every_change);
    slot.commit_took(start_up);
    let (acks, committed) = mpsc::channel::<Written>();
    let (mut read_records, mut dead_letters) = (0u64, 0u64);
    let (mut applied, in_sink, commits) = std::thread::scope(|scope| -> Result<(Applied, Duration, u64)> {
        let sink = sink.as_mut();
        let writer = std::thread::Builder::new()
            .name("sluice-sink".into())
            .spawn_scoped(scope, || {
                let written = write_all(sink, &slot, acks, started);
                if written.is_err() {
                    slot.writer_gone();
                }
                written
            })
            .context("starting the sink thread")?;
        let read = (|| -> Result<()> {
            while !options.stop.load(Ordering::Relaxed) && slot.has_writer() {
                for written in committed.try_iter() {
                    source.committed(&written.reached);
                    ledger.applied(&written.applied, written.took);
                }
                let began = Instant::now();
                let Some(mut batch) = source.next_batch(&plan.batch)? else { break };
                health.beat(); // an empty batch too: the source is caught up
                if batch.records.is_empty() && batch.checkpoints.is_empty() {
                    continue;
                }
                metrics().stage(Stage::Read, began.elapsed());
                summary.batches += 1;
                summary.records += batch.records.len() as u64;
                summary.bytes += batch.bytes as u64;
                let reached = match &bounds {
                    Some(bounds) => {
                        summary.passed_over += bounds.records(&mut batch);
                        std::mem::take(&mut batch.checkpoints)
                    }
                    None => batch.checkpoints.clone(),
                };
                let number = batch.number;
                let backlog =
                    batch.records.len() >= plan.batch.max_records || batch.bytes >= plan.batch.max_bytes;
                let began = Instant::now();
                let mut t = rows::batch(router, batch, &plan.sink)
                    .with_context(|| format!("transforming batch {number}"))?;
                metrics().stage(Stage::Transform, began.elapsed());
                summary.superseded += t.superseded;
                for (_, stats) in &t.tables {
                    summary.skipped += stats.skipped;
                    summary.guest_faults += stats.guest_faults;
                    read_records += stats.read;
                }
                dead_letters += t.sink.dead_letters.len() as u64;
                if let Some(limit) = dead_letter_limit(&plan.run, dead_letters, read_records) {
                    return Err(TooManyDeadLetters {
                        batch: number,
                        dead: dead_letters,
                        read: read_records,
                        limit,
                    }
                    .into());
                }
                for (table, stats) in &t.tables {
                    let label = Table { table: table.to_string() };
                    metrics().records_read.get_or_create(&label).inc_by(stats.read);
                    metrics().dead_letters.get_or_create(&label).inc_by(stats.dead_lettered);
                    metrics().guest_faults.get_or_create(&label).inc_by(stats.guest_faults);
                    summary.tables.entry(table.to_string()).or_default().add(stats);
                }
                compare_transforms(router, &mut transforms, bounds.as_ref());
                if let Some(bounds) = &bounds {
                    summary.passed_over += bounds.rows(&mut t.sink);
                }
                transforms.commit_with(&mut t.sink);
                if keep_totals {
                    t.sink.checkpoints.extend(ledger.batch(&t.tables));
                }
                let pending = Pending { batch: t.sink, reached, change_micros: t.change_micros, backlog };
                match slot.put(pending) {
                    Ok(merged_away) => summary.superseded += merged_away,
                    Err(WriterGone) => break, // its error is reported below
                }
            }
            Ok(())
        })();
        health.stopping();
        slot.close();
        let written = writer.join().expect("the sink thread panicked")?;
        read.map(|()| written)
    })?;
    for written in committed.try_iter() {
        ledger.applied(&written.applied, written.took);
    }
    let settled = sink.settle().context("reading what the last batch applied")?;
    count_applied(&settled);
    ledger.applied(&settled, Duration::ZERO);
    applied += settled;
    let last = ledger.unsent();
    if keep_totals && !last.is_empty() {
        sink.write(&SinkBatch { checkpoints: last, ..Default::default() })
            .context("committing the totals")?;
    }
    summary.applied = applied;
    summary.in_sink = in_sink;
    summary.commits = commits;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// How a coordinated worker reads: through its leases, each partition
/// claimed in the sink before it is read.
fn leased(plan: &Plan, options: &RunOptions) -> Result<Option<Leased>> {
    let Some(worker) = &options.worker else { return Ok(None) };
    let mut claims = plan.sink.claims(&plan.name)?;
    // The claims connection lives and dies on a thread of its own: a
    // blocking client (PostgreSQL's) must not be used or dropped on the
    // runtime that drives the source.
    type Request = (String, i64, tokio::sync::oneshot::Sender<Result<Claimed>>);
    let (requests, inbox) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("sluice-claims".into())
        .spawn(move || {
            for (partition, lease, answer) in inbox {
                let claimed = match claims.claim(&partition, lease) {
                    Ok(position) => Ok(Claimed::Position(position)),
                    Err(SinkError::LeaseLost(lost)) => Ok(Claimed::Lost(lost.to_string())),
                    Err(e) => Err(e.into()),
                };
                let _ = answer.send(claimed);
            }
        })
        .context("starting the claims thread")?;
    let claim: sources::Claim = Arc::new(move |partition, lease| {
        let (answer, answered) = tokio::sync::oneshot::channel();
        // Should the thread have stopped, the answer is dropped with the request.
        let _ = requests.send((partition.to_owned(), lease, answer));
        answered
    });
    Ok(Some(Leased { worker: worker.clone(), claim }))
}

/// What `run --dry-run` found: the next batch after the committed
/// positions, transformed, as the sink would be handed it.
pub struct DryRun {
    pub records: usize,
    pub batch: SinkBatch,
    pub skipped: u64,
    pub superseded: u64,
}

/// Reads the next batch after the committed positions and transforms it,
/// writing nothing: the sink is only read (as `status` does), no position
/// is committed, and no table or epoch is created. (A stream read through
/// enhanced fan-out registers its consumer if it is missing.)
pub fn dry_run(plan: &Plan, runtime: &mut GuestRuntime) -> Result<DryRun> {
    let mut router = Router::new(plan, runtime);
    preflight(plan, &mut router)?;
    let targets = plan.targets();
    let asked = sinks::Asked { pipeline: &plan.name, targets: &targets, sample_rows: 0 };
    let stored = plan.sink.inspect()?.status(&asked)?.checkpoints;
    // The source's positions only, without stamps and totals.
    let committed: Vec<Checkpoint> = stored
        .into_iter()
        .filter(|(partition, ..)| stamped_table(partition).is_none() && !totals::is_totals(partition))
        .map(|(partition, position, _)| Checkpoint { partition, position, lease: None })
        .collect();
    let mut source = sources::open(plan, &committed, true, None)?;
    // A stream may deliver nothing in one wait: try a few.
    for _ in 0..10 {
        let Some(batch) = source.next_batch(&plan.batch)? else { break };
        if batch.records.is_empty() {
            continue;
        }
        let records = batch.records.len();
        let t = rows::batch(&mut router, batch, &plan.sink)?;
        let skipped = t.tables.iter().map(|(_, s)| s.skipped).sum();
        return Ok(DryRun { records, batch: t.sink, skipped, superseded: t.superseded });
    }
    Ok(DryRun { records: 0, batch: SinkBatch::default(), skipped: 0, superseded: 0 })
}

/// The limit of `[run]` that `dead` dead letters of `read` records cross, if any.
fn dead_letter_limit(limits: &RunLimits, dead: u64, read: u64) -> Option<String> {
    if let Some(max) = limits.max_dead_letters.filter(|&max| dead > max) {
        return Some(format!("max_dead_letters = {max}"));
    }
    let ratio = limits.max_dead_letter_ratio?;
    (read >= RATIO_AFTER && dead as f64 > ratio * read as f64)
        .then(|| format!("max_dead_letter_ratio = {ratio}"))
}

/// Records a run reads before `max_dead_letter_ratio` is checked: over fewer
/// a ratio says little (one bad record of the first two is 50%).
const RATIO_AFTER: u64 = 100;

/// Compares the transforms of the guests started since the last call with
/// those that made the stored rows (for a replay, of the tables it rewrites).
fn compare_transforms(router: &mut Router, transforms: &mut Transforms, bounds: Option<&Bounds>) {
    for (table, stamp) in router.take_started() {
        if bounds.is_none_or(|b| b.replays(&table)) {
            transforms.started(&table, &stamp);
        }
    }
}

/// Adds what a sink applied to the metrics.
fn count_applied(applied: &Applied) {
    let m = metrics();
    for (target, rows) in &applied.targets {
        m.applied(target, Kind::Upserted, rows.upserted);
        m.applied(target, Kind::Deleted, rows.deleted);
        m.applied(target, Kind::Stale, rows.stale);
    }
}

/// The sink thread: writes each batch, records what it did, and reports
/// the positions reached to the source. Returns what the sink did, the
/// time it took, and the transactions it committed.
fn write_all(
    sink: &mut dyn sinks::Sink,
    batches: &Slot,
    acks: mpsc::Sender<Written>,
    started: Instant,
) -> Result<(Applied, Duration, u64)> {
    let (mut total, mut in_sink, mut commits) = (Applied::default(), Duration::ZERO, 0);
    let (mut records, mut last_report) = (0u64, Instant::now());
    while let Some(Pending { batch, reached, change_micros, .. }) = batches.take() {
        if batch.rows.is_empty() && batch.dead_letters.is_empty() && batch.checkpoints.is_empty() {
            // A replay's batch that rewrites nothing: no transaction needed.
            let _ = acks.send(Written { reached, applied: Applied::default(), took: Duration::ZERO });
            continue;
        }
        // Where a test holds a batch read under a lease that it lets expire.
        fail::fail_point!("pipeline::before_write");
        let began = Instant::now();
        health().writing(true);
        let applied = sink.write(&batch).with_context(|| format!("writing batch {}", batch.number))?;
        health().writing(false);
        commits += 1;
        let took = began.elapsed();
        batches.commit_took(took);
        in_sink += took;
        health().beat();
        let m = metrics();
        m.stage(Stage::Write, took);
        m.batches.inc();
        m.committed_changes(&change_micros);
        count_applied(&applied);
        let all = applied.rows();
        tracing::debug!(
            batch = batch.number,
            rows = batch.rows.len(),
            took_ms = took.as_millis() as u64,
            upserted = all.upserted,
            deleted = all.deleted,
            stale = all.stale,
            dead_lettered = applied.dead_lettered,
            "committed"
        );
        records += batch.records;
        let _ = acks.send(Written { reached, applied: applied.clone(), took });
        total += applied;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                batch = batch.number,
                records,
                rate = format!("{:.0}/s", records as f64 / secs),
                "committed"
            );
        }
    }
    Ok((total, in_sink, commits))
}
