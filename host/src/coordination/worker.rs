//! One worker's side of the lease table, as a task on the AWS runtime:
//! every tick it renews what it holds, scans the table, notes which
//! holders stopped renewing, and takes or steals leases by `balance.rs`.
//! The shards it holds are published on a watch channel, each with the
//! lease counter it took the lease at: the fencing token its checkpoints
//! carry into the sink. The leases seen ended are published too, so an
//! export's loaders know when every data file is loaded.
//!
//! Expiry is judged the KCL's way, without trusting clocks: a lease whose
//! counter has not moved for a whole lease duration, as this worker saw
//! it, has a holder that stopped renewing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{mpsc, oneshot, watch};

use super::Config;
use super::balance::{Round, Take, choose};
use super::leases::{Lease, LeaseTable, SHARD_END};

/// A shard this worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The lease counter when this worker took the lease.
    pub token: i64,
    /// A shard it was split or merged from has a lease, so was read to its
    /// end: this one is read from its oldest record. (A parent without a
    /// lease was passed over, or trimmed away before the table knew it.)
    pub after_parent: bool,
}

/// The shards this worker holds.
pub type Held = BTreeMap<String, Holding>;

/// The keys of the leases whose end is committed, as last scanned.
pub type Ended = BTreeSet<String>;

/// What the stream's side tells the worker.
enum Report {
    /// Shards (or data files), as listed: (key, parents).
    Shards(Vec<(String, Vec<String>)>),
    /// Leases with keys starting so are taken before any other.
    First(String),
    /// A shard's position was committed in the sink.
    Committed { shard: String, sequence: String },
    /// A shard's end was committed in the sink.
    Ended(String),
    /// Give every lease back, then answer.
    Release(oneshot::Sender<()>),
}

/// The handle the rest of the process holds.
#[derive(Debug)]
pub struct Worker {
    id: String,
    reports: mpsc::UnboundedSender<Report>,
    held: watch::Receiver<Held>,
    ended_leases: watch::Receiver<Ended>,
}

impl Worker {
    /// Makes sure the lease table exists, then starts the worker's task.
    pub fn start(config: &Config) -> Result<Arc<Worker>> {
        let table = config.lease_table();
        crate::aws::block_on(table.ensure())?;
        let (reports, inbox) = mpsc::unbounded_channel();
        let (publish, held) = watch::channel(Held::new());
        let (publish_ended, ended_leases) = watch::channel(Ended::new());
        let task = Task {
            table,
            duration: config.lease_duration,
            // Renewals come three to a lease duration; scans at least every second.
            tick: (config.lease_duration / 3).min(Duration::from_secs(1)),
            max_leases: config.max_leases,
            held: BTreeMap::new(),
            seen: HashMap::new(),
            listed: Vec::new(),
            committed: HashMap::new(),
            first: None,
            publish,
            publish_ended,
        };
        crate::aws::runtime().spawn(task.run(inbox));
        tracing::info!(worker = config.worker_id, table = config.table, "joined the lease table");
        Ok(Arc::new(Worker { id: config.worker_id.clone(), reports, held, ended_leases }))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The shards held now, and every change to them.
    pub fn held(&self) -> watch::Receiver<Held> {
        self.held.clone()
    }

    /// The leases whose end is committed, as last scanned, and every change.
    pub fn ended_leases(&self) -> watch::Receiver<Ended> {
        self.ended_leases.clone()
    }

    pub fn shards_listed(&self, shards: Vec<(String, Vec<String>)>) {
        let _ = self.reports.send(Report::Shards(shards));
    }

    /// An export's data files, each leased under its key (which starts with
    /// `prefix`); no other lease is taken while one of them is open.
    pub fn files_listed(&self, prefix: &str, files: Vec<String>) {
        let _ = self.reports.send(Report::First(prefix.to_owned()));
        let _ = self.reports.send(Report::Shards(files.into_iter().map(|f| (f, Vec::new())).collect()));
    }

    pub fn committed(&self, shard: &str, sequence: &str) {
        let _ =
            self.reports.send(Report::Committed { shard: shard.to_owned(), sequence: sequence.to_owned() });
    }

    /// The shard's end is committed: its children may be taken, by any worker.
    pub fn ended(&self, shard: &str) {
        let _ = self.reports.send(Report::Ended(shard.to_owned()));
    }

    /// Gives every lease back, so other workers take them at their next
    /// scan instead of waiting for them to expire.
    pub fn release(&self) {
        let (done, answered) = oneshot::channel();
        if self.reports.send(Report::Release(done)).is_ok() {
            let _ =
                crate::aws::block_on(async { tokio::time::timeout(Duration::from_secs(10), answered).await });
        }
    }
}

/// A lease held, as last written.
struct Kept {
    lease: Lease,
    token: i64,
    renewed: Instant,
    after_parent: bool,
}

struct Task {
    table: LeaseTable,
    duration: Duration,
    /// How often the worker renews, scans and takes.
    tick: Duration,
    max_leases: Option<usize>,
    held: BTreeMap<String, Kept>,
    /// Each lease's owner and counter as last seen, and since when.
    seen: HashMap<String, (Option<String>, i64, Instant)>,
    /// The shards last listed, whose missing leases the next round creates.
    listed: Vec<(String, Vec<String>)>,
    /// Positions to record in held leases, for the KCL's tools.
    committed: HashMap<String, String>,
    /// The prefix of the keys taken before all others.
    first: Option<String>,
    publish: watch::Sender<Held>,
    publish_ended: watch::Sender<Ended>,
}

impl Task {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Report>) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(e) = self.round().await {
                        tracing::warn!("lease table: {e:#}; trying again");
                    }
                    // What renewals lost counts even when the scan failed.
                    self.publish();
                }
                report = inbox.recv() => match report {
                    // Listed by the stream and by an export: kept until the next round.
                    Some(Report::Shards(shards)) => self.listed.extend(shards),
                    Some(Report::First(prefix)) => self.first = Some(prefix),
                    Some(Report::Committed { shard, sequence }) => drop(self.committed.insert(shard, sequence)),
                    Some(Report::Ended(shard)) => self.end(&shard).await,
                    Some(Report::Release(done)) => {
                        self.release_all().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.release_all().await;
                        return;
                    }
                },
            }
        }
    }

    async fn round(&mut self) -> Result<()> {
        self.renew().await;
        self.record_positions().await;
        let leases = self.table.all().await?;
        let ended: Ended = leases.iter().filter(|l| l.ended()).map(|l| l.key.clone()).collect();
        self.publish_ended.send_if_modified(|current| {
            let changed = *current != ended;
            *current = ended;
            changed
        });
        let known: HashSet<&str> = leases.iter().map(|l| l.key.as_str()).collect();
        for (shard, parents) in std::mem::take(&mut self.listed) {
            if !known.contains(shard.as_str()) && self.table.create(&shard, &parents).await? {
                tracing::info!(key = shard, "created the lease");
            }
        }
        let now = Instant::now();
        let mut expired = HashSet::new();
        for lease in &leases {
            let entry =
                self.seen.entry(lease.key.clone()).or_insert((lease.owner.clone(), lease.counter, now));
            if entry.0 != lease.owner || entry.1 != lease.counter {
                *entry = (lease.owner.clone(), lease.counter, now);
            }
            if lease.owner.is_some() && now.duration_since(entry.2) >= self.duration {
                expired.insert(lease.key.clone());
            }
        }
        let me = self.table.worker().to_owned();
        let round = Round {
            me: &me,
            leases: &leases,
            expired: &expired,
            max_leases: self.max_leases,
            first: self.first.as_deref(),
        };
        for take in choose(&round) {
            let (seen, stolen) = match take {
                Take::Free(l) => (l, false),
                Take::Steal(l) => (l, true),
            };
            if let Some(lease) = self.table.take(seen).await? {
                match (&seen.owner, stolen) {
                    (Some(from), true) => {
                        tracing::info!(key = lease.key, from, "stole the lease to balance the workers")
                    }
                    (Some(from), false) => tracing::info!(key = lease.key, from, "took an expired lease"),
                    (None, _) => tracing::info!(key = lease.key, "took a free lease"),
                }
                let token = lease.counter;
                let after_parent = lease.parents.iter().any(|p| known.contains(p.as_str()));
                self.held
                    .insert(lease.key.clone(), Kept { lease, token, renewed: Instant::now(), after_parent });
            }
        }
        Ok(())
    }

    /// Renews each lease due; a lease lost, or not renewed for a whole
    /// duration (the table unreachable), is let go.
    async fn renew(&mut self) {
        // Due at a third of the duration; a tick early rather than late,
        // since ticks come no further apart than that.
        let due = self.duration / 3 - self.tick / 2;
        let mut lost = Vec::new();
        for (shard, held) in &mut self.held {
            if held.renewed.elapsed() < due {
                continue;
            }
            match self.table.renew(&held.lease).await {
                Ok(Some(lease)) => {
                    held.lease = lease;
                    held.renewed = Instant::now();
                }
                Ok(None) => {
                    tracing::warn!(key = shard, "lost the lease to another worker");
                    lost.push(shard.clone());
                }
                Err(e) if held.renewed.elapsed() >= self.duration => {
                    tracing::warn!(
                        key = shard,
                        "could not renew the lease for a whole lease duration: {e:#}"
                    );
                    lost.push(shard.clone());
                }
                Err(e) => tracing::warn!(key = shard, "renewing the lease: {e:#}; trying again"),
            }
        }
        for shard in lost {
            self.held.remove(&shard);
        }
    }

    async fn record_positions(&mut self) {
        for (shard, sequence) in std::mem::take(&mut self.committed) {
            if self.held.contains_key(&shard)
                && let Err(e) = self.table.checkpoint(&shard, &sequence).await
            {
                tracing::warn!(key = shard, "recording the position in the lease table: {e:#}");
            }
        }
    }

    /// Marks a shard's lease ended and stops holding it.
    async fn end(&mut self, shard: &str) {
        self.committed.remove(shard);
        match self.table.checkpoint(shard, SHARD_END).await {
            Ok(true) => {
                tracing::info!(
                    key = shard,
                    "the end is committed: the lease is ended, and what waits on it may be taken"
                );
                self.held.remove(shard);
                self.publish();
            }
            Ok(false) => {
                tracing::warn!(key = shard, "the end is committed, but the lease is no longer ours")
            }
            // The next holder finds the end committed in the sink and marks it.
            Err(e) => tracing::warn!(key = shard, "marking the end in the lease table: {e:#}"),
        }
    }

    async fn release_all(&mut self) {
        self.record_positions().await;
        for (shard, held) in std::mem::take(&mut self.held) {
            match self.table.release(&held.lease).await {
                Ok(true) => tracing::info!(key = shard, "gave the lease back"),
                Ok(false) => {}
                Err(e) => tracing::warn!(key = shard, "giving the lease back: {e:#}; it expires instead"),
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let label = crate::telemetry::metrics::Worker { worker: self.table.worker().to_owned() };
        crate::telemetry::metrics::metrics().leases_held.get_or_create(&label).set(self.held.len() as i64);
        let held: Held = self
            .held
            .iter()
            .map(|(shard, h)| (shard.clone(), Holding { token: h.token, after_parent: h.after_parent }))
            .collect();
        self.publish.send_if_modified(|current| {
            let changed = *current != held;
            *current = held;
            changed
        });
    }
}
