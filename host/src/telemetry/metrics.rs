//! The process's Prometheus metrics and its health, recorded by the rooms
//! through [`metrics()`] and [`health()`] and served by `server.rs`.
//!
//! Label `table` is the DynamoDB table (records, faults, dead letters);
//! `target` is the sink table (rows applied); `shard` is a stream's shard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Table {
    pub table: String,
}

/// What became of a row: `kind="upserted"`, `"deleted"` or `"stale"`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Upserted,
    Deleted,
    Stale,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Applied {
    pub target: String,
    pub kind: &'static str,
}

/// Where a batch spends its time: `stage="read"`, `"transform"` or `"write"`.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    Read,
    Transform,
    Write,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Shard {
    pub shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Worker {
    pub worker: String,
}

/// A change's age when its row commits, in seconds: fine steps below two
/// seconds, where latency targets live, then coarse ones up to an hour.
const COMMIT_LAG_BUCKETS: [f64; 22] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 3600.0,
];

pub struct Metrics {
    registry: Registry,
    pub records_read: Family<Table, Counter>,
    pub rows_applied: Family<Applied, Counter>,
    pub dead_letters: Family<Table, Counter>,
    pub guest_faults: Family<Table, Counter>,
    pub batches: Counter,
    pub batch_seconds: Family<StageLabel, Histogram>,
    pub commit_lag_seconds: Histogram,
    pub source_behind_milliseconds: Family<Shard, Gauge>,
    pub leases_held: Family<Worker, Gauge>,
}

/// `metric`, registered under `name` (a metric is a handle: the clone the
/// registry keeps counts what the returned one records).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let r = &mut registry;
        Metrics {
            records_read: registered(r, "records_read", "Records read from the source", Family::default()),
            rows_applied: registered(
                r,
                "rows_applied",
                "Rows the sink applied, or refused as stale",
                Family::default(),
            ),
            dead_letters: registered(r, "dead_letters", "Records stored as dead letters", Family::default()),
            guest_faults: registered(
                r,
                "guest_faults",
                "Records a transform failed on (trap, memory, time)",
                Family::default(),
            ),
            batches: registered(
                r,
                "batches",
                "Transactions the sink committed (merged batches count once)",
                Counter::default(),
            ),
            // 1 ms to ~9 min.
            batch_seconds: registered(
                r,
                "batch_seconds",
                "Time a batch spent in each stage",
                Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 20))),
            ),
            commit_lag_seconds: registered(
                r,
                "commit_lag_seconds",
                "From a stream change's ApproximateCreationDateTime to the commit of its batch",
                Histogram::new(COMMIT_LAG_BUCKETS.iter().copied()),
            ),
            source_behind_milliseconds: registered(
                r,
                "source_behind_milliseconds",
                "How far a shard's reader is behind the tip (Kinesis MillisBehindLatest)",
                Family::default(),
            ),
            leases_held: registered(
                r,
                "leases_held",
                "Open shards whose leases this worker holds ([coordination])",
                Family::default(),
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }

    pub fn applied(&self, target: &str, kind: Kind, n: u64) {
        if n > 0 {
            let kind = match kind {
                Kind::Upserted => "upserted",
                Kind::Deleted => "deleted",
                Kind::Stale => "stale",
            };
            self.rows_applied.get_or_create(&Applied { target: target.to_owned(), kind }).inc_by(n);
        }
    }

    pub fn stage(&self, stage: Stage, took: Duration) {
        let stage = match stage {
            Stage::Read => "read",
            Stage::Transform => "transform",
            Stage::Write => "write",
        };
        self.batch_seconds.get_or_create(&StageLabel { stage }).observe(took.as_secs_f64());
    }

    /// Observes, for each change committed now, how long ago it was made.
    pub fn committed_changes(&self, change_micros: &[u64]) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        for &made in change_micros {
            self.commit_lag_seconds.observe(now.saturating_sub(made) as f64 / 1e6);
        }
    }
}

/// Whether the pipeline makes progress: `/health` answers 200 while it
/// does, or waits caught up, and 503 when it is stopping, when the reading
/// side has not moved, or when the sink has been busy with one batch, for
/// longer than the stall limit.
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` of the last sign of progress.
    beat: AtomicU64,
    /// Milliseconds since `started` when the sink began the write under
    /// way, plus one; 0 while it is not writing.
    writing: AtomicU64,
    stall_ms: AtomicU64,
    /// The run's stop flag (set by SIGINT or SIGTERM), watched.
    stop: Mutex<Arc<AtomicBool>>,
    /// The run is done reading.
    ended: AtomicBool,
}

pub fn health() -> &'static Health {
    static HEALTH: LazyLock<Health> = LazyLock::new(|| Health {
        started: Instant::now(),
        beat: AtomicU64::new(0),
        writing: AtomicU64::new(0),
        stall_ms: AtomicU64::new(60_000),
        stop: Mutex::new(Arc::new(AtomicBool::new(false))),
        ended: AtomicBool::new(false),
    });
    &HEALTH
}

impl Health {
    /// The pipeline moved: a batch was read (even an empty one, which means
    /// the source is caught up) or committed.
    pub fn beat(&self) {
        self.beat.store(self.now(), Ordering::Relaxed);
    }

    /// The sink starts (`true`) or ends a write.
    pub fn writing(&self, busy: bool) {
        self.writing.store(if busy { self.now() + 1 } else { 0 }, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn stall_after(&self, limit: Duration) {
        self.stall_ms.store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    /// Reports "stopping" as soon as `flag` is set.
    pub fn stops_with(&self, flag: Arc<AtomicBool>) {
        *self.stop.lock().expect("health lock") = flag;
    }

    /// The run is done reading: "stopping" from now on.
    pub fn stopping(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// `Ok` with how long ago the last beat was, or `Err` saying why not healthy.
    pub fn check(&self) -> Result<Duration, String> {
        let now = self.now();
        let since = Duration::from_millis(now.saturating_sub(self.beat.load(Ordering::Relaxed)));
        let writing = match self.writing.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            began => Duration::from_millis(now.saturating_sub(began - 1)),
        };
        let limit = Duration::from_millis(self.stall_ms.load(Ordering::Relaxed));
        let stopping = self.ended.load(Ordering::Relaxed)
            || self.stop.lock().expect("health lock").load(Ordering::Relaxed);
        if stopping {
            Err("stopping".into())
        } else if writing > limit {
            Err(format!(
                "stalled: the sink has been writing one batch for {:.1} s (limit {} s)",
                writing.as_secs_f64(),
                limit.as_secs()
            ))
        } else if since > limit {
            Err(format!(
                "stalled: no progress for {:.1} s (limit {} s)",
                since.as_secs_f64(),
                limit.as_secs()
            ))
        } else {
            Ok(since)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ok_while_beating_and_not_when_stalled_or_stopping() {
        let health = Health {
            started: Instant::now(),
            beat: AtomicU64::new(0),
            writing: AtomicU64::new(0),
            stall_ms: AtomicU64::new(50),
            stop: Mutex::new(Arc::new(AtomicBool::new(false))),
            ended: AtomicBool::new(false),
        };
        health.beat();
        assert!(health.check().is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert!(health.check().unwrap_err().starts_with("stalled"));
        health.beat();
        assert!(health.check().is_ok());
        health.writing(true);
        std::thread::sleep(Duration::from_millis(80));
        health.beat();
        assert!(health.check().unwrap_err().contains("the sink has been writing"));
        health.writing(false);
        assert!(health.check().is_ok());
        let stop = Arc::new(AtomicBool::new(false));
        health.stops_with(stop.clone());
        stop.store(true, Ordering::Relaxed);
        assert_eq!(health.check().unwrap_err(), "stopping");
    }

    #[test]
    fn counters_are_exposed_with_their_labels_in_the_text_format() {
        let m = Metrics::new();
        m.records_read.get_or_create(&Table { table: "orders".into() }).inc_by(7);
        m.applied("orders_cdc", Kind::Stale, 2);
        let text = m.encode();
        assert!(text.contains("sluice_records_read_total{table=\"orders\"} 7"), "{text}");
        assert!(text.contains("sluice_rows_applied_total{target=\"orders_cdc\",kind=\"stale\"} 2"), "{text}");
    }
}
