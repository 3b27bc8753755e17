//! A Kinesis data stream fed by "Kinesis Data Streams for DynamoDB".
//!
//! Every call goes by stream ARN, optionally with credentials from a role
//! assumed through STS (refreshed before they expire). A coordinator task
//! lists the shards every few seconds and starts a reader task per shard
//! once its parents are done (`lineage.rs`); readers poll `GetRecords` or
//! subscribe with enhanced fan-out (`reader.rs`) and hand records over a
//! bounded channel, so a slow sink slows reading instead of filling memory.
//! Batches are cut here, on the pipeline's thread.
//!
//! The position of a shard is the last sequence number committed, and
//! whether the shard was read to its end. Sequence numbers are compared by
//! length, then as text: they are decimal strings of 56 digits or more.

mod config;
mod lineage;
mod reader;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Claimed, Leased, Positions, Source};

pub use config::{Config, Section, Start};

use crate::coordination::{Held, Worker};
use crate::record::{Batch, BatchLimits, Checkpoint, SourceRecord};
use lineage::{Lineage, Ready, Shard};
use reader::{Mode, Reader, StartAt};

/// How often the shard list is read again, to find new shards.
const RELIST_EVERY: Duration = Duration::from_secs(10);
/// Events (each up to a thousand records) waiting for the pipeline.
const CHANNEL: usize = 16;
/// How often progress (per-shard lag) is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What readers hand to the source.
pub(super) enum Event {
    Records {
        partition: Arc<str>,
        records: Vec<SourceRecord>,
        lease: Option<i64>,
    },
    /// The shard was read to its end; `last` is its last sequence number.
    Ended {
        partition: Arc<str>,
        last: Option<String>,
        lease: Option<i64>,
    },
    /// The stream cannot be read on; the run stops with this error.
    Failed(anyhow::Error),
}

/// A shard's position as committed in the sink.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Position {
    /// The last sequence number whose record is committed.
    after: Option<String>,
    /// Whether the shard was read to its end.
    #[serde(default)]
    ended: bool,
}

fn stream_name(config: &Config) -> Result<&str> {
    config
        .stream_arn
        .rsplit_once("stream/")
        .map(|(_, name)| name)
        .ok_or_else(|| anyhow!("{} is not a Kinesis stream ARN", config.stream_arn))
}

/// A client for the stream, through its role if the manifest names one.
fn client(config: &Config) -> aws_sdk_kinesis::Client {
    // The shared SDK configuration is loaded before entering the runtime.
    let sdk = crate::aws::config();
    match &config.role_arn {
        Some(role) => crate::aws::kinesis(&crate::aws::block_on(crate::aws::assume_role(sdk, role))),
        None => crate::aws::kinesis(sdk),
    }
}

/// How far each committed shard position is behind the stream's tip, for
/// `sluice status`: (partition, milliseconds behind, or why not known).
/// Reads one record after each position (GetShardIterator, GetRecords),
/// which commits and changes nothing.
pub fn behind(config: &Config, committed: &[Checkpoint]) -> Result<Vec<(String, Result<i64, String>)>> {
    let prefix = format!("{}/", stream_name(config)?);
    let client = client(config);
    let mut lags = Vec::new();
    for c in committed.iter().filter(|c| c.partition.starts_with(&prefix)) {
        let shard = &c.partition[prefix.len()..];
        let position: Position = serde_json::from_str(&c.position).unwrap_or_default();
        let lag = match (position.ended, position.after) {
            (true, _) => Ok(0),
            (false, None) => Err("no record committed yet".to_owned()),
            (false, Some(after)) => crate::aws::block_on(async {
                let iterator = client
                    .get_shard_iterator()
                    .stream_arn(&config.stream_arn)
                    .shard_id(shard)
                    .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(after)
                    .send()
                    .await
                    .map_err(|e| crate::aws::describe(&e))?;
                let page = client
                    .get_records()
                    .shard_iterator(iterator.shard_iterator().unwrap_or_default())
                    .limit(1)
                    .send()
                    .await
                    .map_err(|e| crate::aws::describe(&e))?;
                Ok(page.millis_behind_latest().unwrap_or(0))
            }),
        };
        lags.push((c.partition.clone(), lag));
    }
    Ok(lags)
}

/// The last sequence number a committed position covers.
pub(super) fn last_sequence(position: &str) -> Option<String> {
    serde_json::from_str::<Position>(position).ok()?.after
}

/// What the readers report about their shards: lag, and which have ended.
#[derive(Default)]
pub(super) struct Status {
    /// The shards being read, or read to their end, in this run.
    shards: Mutex<HashMap<String, ShardStatus>>,
    /// The shards ListShards shows closed (split or merged away).
    closed: Mutex<HashSet<String>>,
}

#[derive(Default, Clone)]
struct ShardStatus {
    millis_behind: Option<i64>,
    ended: bool,
    /// The last sequence number the sink committed.
    committed: Option<String>,
}

impl Status {
    fn behind(&self, shard: &str, millis: Option<i64>) {
        if let Some(ms) = millis {
            crate::telemetry::metrics::metrics()
                .source_behind_milliseconds
                .get_or_create(&label(shard))
                .set(ms);
        }
        self.shards.lock().expect("status lock").entry(shard.to_owned()).or_default().millis_behind = millis;
    }

    fn ended(&self, shard: &str) {
        self.shards.lock().expect("status lock").entry(shard.to_owned()).or_default().ended = true;
    }

    /// Another worker reads the shard now, and reports how far behind it is.
    fn forget(&self, shard: &str) {
        self.shards.lock().expect("status lock").remove(shard);
        crate::telemetry::metrics::metrics().source_behind_milliseconds.remove(&label(shard));
    }

    fn closed(&self, shard: &str) {
        self.closed.lock().expect("status lock").insert(shard.to_owned());
    }

    fn is_closed(&self, shard: &str) -> bool {
        self.closed.lock().expect("status lock").contains(shard)
    }

    fn commit(&self, shard: &str, sequence: String) {
        self.shards.lock().expect("status lock").entry(shard.to_owned()).or_default().committed =
            Some(sequence);
    }

    fn committed(&self, shard: &str) -> Option<String> {
        self.shards.lock().expect("status lock").get(shard).and_then(|s| s.committed.clone())
    }

    /// Every shard being read has reached the tip (or its end).
    fn caught_up(&self) -> bool {
        self.shards.lock().expect("status lock").values().all(|s| s.ended || s.millis_behind == Some(0))
    }

    fn describe(&self) -> String {
        let shards = self.shards.lock().expect("status lock");
        let mut lines: Vec<String> = shards
            .iter()
            .filter(|(_, s)| !s.ended)
            .map(|(id, s)| match s.millis_behind {
                Some(ms) => format!("{id} {ms} ms behind"),
                None => format!("{id} starting"),
            })
            .collect();
        lines.sort();
        lines.join(", ")
    }
}

/// A shard's label in the metrics.
fn label(shard: &str) -> crate::telemetry::metrics::Shard {
    crate::telemetry::metrics::Shard { shard: shard.to_owned() }
}

/// What the coordinator shares with the pipeline's side.
struct Shared {
    status: Arc<Status>,
    /// No shard is waiting for a parent.
    settled: Mutex<bool>,
}

pub struct KinesisSource {
    /// The coordinator task; aborting it stops every shard reader too.
    coordinator: tokio::task::AbortHandle,
    events: mpsc::Receiver<Event>,
    /// The rest of a page of records that did not fit in the last batch.
    pending: Option<Event>,
    /// Shards whose end the sink committed, for the coordinator.
    commits: mpsc::UnboundedSender<String>,
    /// The lease table's worker, when the stream is shared.
    worker: Option<Arc<Worker>>,
    shared: Arc<Shared>,
    stream_name: Arc<str>,
    exit_when_caught_up: bool,
    batches: u64,
    last_progress: Instant,
}

impl KinesisSource {
    /// Opens the stream, resuming from `committed`; a coordinated worker
    /// (`leased`) reads only the shards it holds, each from the position
    /// its claim finds.
    pub fn open(
        config: &Config,
        committed: &[Checkpoint],
        exit_when_caught_up: bool,
        leased: Option<Leased>,
    ) -> Result<Self> {
        let stream_name: Arc<str> = stream_name(config)?.into();
        let prefix = format!("{stream_name}/");
        let mut positions = HashMap::new();
        for c in committed.iter().filter(|c| c.partition.starts_with(&prefix)) {
            let position: Position = serde_json::from_str(&c.position)
                .with_context(|| format!("reading the checkpoint of {}: {:?}", c.partition, c.position))?;
            positions.insert(c.partition[prefix.len()..].to_owned(), position);
        }
        let client = client(config);
        let (events_tx, events) = mpsc::channel(CHANNEL);
        let (commits, commits_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { status: Arc::default(), settled: Mutex::new(false) });
        let worker = leased.as_ref().map(|l| l.worker.clone());
        let coordinator = Coordinator {
            client,
            consumer: config.consumer.clone(),
            poll_interval: config.poll_interval,
            stream_arn: config.stream_arn.clone(),
            stream_name: stream_name.clone(),
            start: config.start.clone(),
            positions,
            events: events_tx,
            shared: shared.clone(),
        };
        let coordinator = match leased {
            None => crate::aws::runtime().spawn(coordinator.run(commits_rx)),
            Some(leased) => crate::aws::runtime().spawn(coordinator.run_leased(leased)),
        };
        let coordinator = coordinator.abort_handle();
        Ok(KinesisSource {
            coordinator,
            events,
            pending: None,
            commits,
            worker,
            shared,
            stream_name,
            exit_when_caught_up,
            batches: 0,
            last_progress: Instant::now(),
        })
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        self.coordinator.abort();
    }
}

impl Source for KinesisSource {
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>> {
        let deadline = Instant::now() + limits.max_wait;
        let mut batch = Batch::default();
        let mut positions = Positions::new();
        while batch.records.len() < limits.max_records && batch.bytes < limits.max_bytes {
            let mut wait = deadline.saturating_duration_since(Instant::now());
            if !batch.records.is_empty() {
                wait = wait.min(limits.linger);
            }
            let event = match self.pending.take().map_or_else(|| self.events.try_recv(), Ok) {
                Ok(event) => event,
                Err(mpsc::error::TryRecvError::Disconnected) => bail!("the Kinesis readers stopped"),
                Err(mpsc::error::TryRecvError::Empty) if wait.is_zero() => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let events = &mut self.events;
                    match crate::aws::block_on(async { tokio::time::timeout(wait, events.recv()).await }) {
                        Ok(Some(event)) => event,
                        Ok(None) => bail!("the Kinesis readers stopped"),
                        Err(_) => break,
                    }
                }
            };
            match event {
                Event::Records { partition, mut records, lease } => {
                    // Cut the page where the batch is full; the rest opens the next batch.
                    let room = limits.max_records - batch.records.len();
                    if records.len() > room {
                        let rest = records.split_off(room);
                        self.pending =
                            Some(Event::Records { partition: partition.clone(), records: rest, lease });
                    }
                    let last = records.last().map(|r| r.sequence.clone());
                    batch.bytes += records.iter().map(|r| r.payload.len()).sum::<usize>();
                    batch.records.extend(records);
                    positions.set(&partition, Position { after: last, ended: false }, lease);
                }
                Event::Ended { partition, last, lease } => {
                    positions.set(&partition, Position { after: last, ended: true }, lease)
                }
                Event::Failed(e) => return Err(e),
            }
        }
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            tracing::info!(stream = &*self.stream_name, "shards: {}", self.shared.status.describe());
        }
        if batch.records.is_empty() && positions.is_empty() {
            let settled = *self.shared.settled.lock().expect("settled lock");
            let drained = self.events.is_empty() && self.pending.is_none();
            if self.exit_when_caught_up && settled && self.shared.status.caught_up() && drained {
                tracing::info!(stream = &*self.stream_name, "every shard is at its tip");
                return Ok(None);
            }
            return Ok(Some(batch));
        }
        positions.seal(&mut batch, &mut self.batches);
        Ok(Some(batch))
    }

    fn committed(&mut self, checkpoints: &[Checkpoint]) {
        let prefix = format!("{}/", self.stream_name);
        for c in checkpoints {
            let (Some(shard), Ok(position)) =
                (c.partition.strip_prefix(&prefix), serde_json::from_str::<Position>(&c.position))
            else {
                continue;
            };
            if let Some(seq) = position.after {
                if let Some(worker) = &self.worker {
                    worker.committed(shard, &seq);
                }
                self.shared.status.commit(shard, seq);
            }
            if position.ended {
                match &self.worker {
                    Some(worker) => worker.ended(shard),
                    None => drop(self.commits.send(shard.to_owned())),
                }
            }
        }
    }
}

impl Start {
    /// Where a shard without a checkpoint, and without a parent that was
    /// read, starts.
    fn at(&self) -> StartAt {
        match self {
            Start::TrimHorizon => StartAt::TrimHorizon,
            Start::Latest => StartAt::Latest,
            Start::AtTimestamp(t) => StartAt::Timestamp(aws_sdk_kinesis::primitives::DateTime::from(*t)),
        }
    }
}

/// Lists shards and starts their readers in lineage order.
struct Coordinator {
    client: aws_sdk_kinesis::Client,
    /// The enhanced fan-out consumer's name, if any.
    consumer: Option<String>,
    poll_interval: Duration,
    stream_arn: String,
    stream_name: Arc<str>,
    start: Start,
    positions: HashMap<String, Position>,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
}

impl Coordinator {
    async fn run(self, mut commits: mpsc::UnboundedReceiver<String>) {
        let Some(mode) = self.mode().await else { return };
        let ended = self.positions.iter().filter(|(_, p)| p.ended).map(|(id, _)| id.clone());
        let mut lineage = Lineage::new(ended);
        let mut relist = tokio::time::interval(RELIST_EVERY);
        let mut first_listing = true;
        // Owned here, so that aborting the coordinator aborts every reader.
        let mut readers = tokio::task::JoinSet::new();
        loop {
            while readers.try_join_next().is_some() {}
            tokio::select! {
                _ = relist.tick() => match self.relist().await {
                    Some(shards) => {
                        let skip = if first_listing { self.passed_over(&shards) } else { HashSet::new() };
                        first_listing = false;
                        lineage.update(shards);
                        skip.iter().for_each(|id| lineage.skip(id));
                    }
                    None => return,
                },
                Some(shard) = commits.recv() => lineage.end_committed(&shard),
            }
            for Ready { shard, after_parent } in lineage.ready() {
                let start = match self.positions.get(&shard.id) {
                    Some(Position { after: Some(seq), .. }) => StartAt::After(seq.clone()),
                    _ if after_parent => StartAt::TrimHorizon,
                    _ => self.start.at(),
                };
                if !after_parent {
                    tracing::info!(shard = shard.id, "reading shard");
                } else {
                    tracing::info!(
                        shard = shard.id,
                        parents = shard.parents.join(" "),
                        "reading shard after its parents ended"
                    );
                }
                self.shared.status.behind(&shard.id, None);
                let reader = Reader {
                    client: self.client.clone(),
                    mode: mode.clone(),
                    stream_arn: self.stream_arn.clone(),
                    stream_name: self.stream_name.clone(),
                    shard: shard.id,
                    start,
                    lease: None,
                    events: self.events.clone(),
                    status: self.shared.status.clone(),
                };
                readers.spawn(reader.run());
            }
            *self.shared.settled.lock().expect("settled lock") = !lineage.waiting();
        }
    }

    /// Reads the shards whose leases the worker holds, as they come and go.
    /// Each is claimed in the sink under its lease counter first: the claim
    /// fences out the previous holder and says where it stopped.
    async fn run_leased(self, leased: Leased) {
        let Leased { worker, claim } = leased;
        let Some(mode) = self.mode().await else { return };
        let mut held = worker.held();
        let mut relist = tokio::time::interval(RELIST_EVERY);
        // Passed over at the first listing: never leased, so never read, and
        // their children are read from `start`.
        let mut passed_over = None;
        // Each shard being read: its lease counter and its reader.
        let mut reading: HashMap<String, (i64, tokio::task::AbortHandle)> = HashMap::new();
        let mut readers = tokio::task::JoinSet::new();
        *self.shared.settled.lock().expect("settled lock") = true;
        loop {
            while readers.try_join_next().is_some() {}
            tokio::select! {
                _ = relist.tick() => match self.relist().await {
                    Some(shards) => {
                        let skip = passed_over.get_or_insert_with(|| self.passed_over(&shards));
                        let listed = shards.into_iter().filter(|s| !skip.contains(&s.id));
                        worker.shards_listed(listed.map(|s| (s.id, s.parents)).collect());
                    }
                    None => return,
                },
                changed = held.changed() => if changed.is_err() {
                    let _ = self.events.send(Event::Failed(anyhow!("the lease table's worker stopped"))).await;
                    return;
                },
            }
            let now: Held = held.borrow_and_update().clone();
            reading.retain(|shard, (token, reader)| {
                let keep = now.get(shard).is_some_and(|h| h.token == *token);
                // A reader that finished read its shard to the end, which is
                // why the lease went; any other moved to another worker.
                if !keep && !reader.is_finished() {
                    tracing::info!(shard, "stopped reading: the lease moved");
                    reader.abort();
                    self.shared.status.forget(shard);
                }
                keep
            });
            for (shard, holding) in &now {
                if reading.contains_key(shard) {
                    continue;
                }
                let token = holding.token;
                let position = match claim(&format!("{}/{shard}", self.stream_name), token).await {
                    Ok(Ok(Claimed::Position(c))) => {
                        c.and_then(|c| serde_json::from_str::<Position>(&c.position).ok())
                    }
                    Ok(Ok(Claimed::Lost(why))) => {
                        tracing::warn!(shard, "not reading: {why}");
                        continue;
                    }
                    Ok(Err(why)) => {
                        let _ = self
                            .events
                            .send(Event::Failed(why.context(format!("claiming shard {shard}"))))
                            .await;
                        return;
                    }
                    Err(_) => {
                        let why = anyhow!("claiming shard {shard}: the claims thread stopped");
                        let _ = self.events.send(Event::Failed(why)).await;
                        return;
                    }
                };
                if position.as_ref().is_some_and(|p| p.ended) {
                    // Its end was committed by a holder that stopped before
                    // marking the lease.
                    worker.ended(shard);
                    continue;
                }
                let start = match position.and_then(|p| p.after) {
                    Some(seq) => StartAt::After(seq),
                    None if holding.after_parent => StartAt::TrimHorizon,
                    None => self.start.at(),
                };
                tracing::info!(shard, lease = token, from = ?start, "reading shard under its lease");
                self.shared.status.behind(shard, None);
                let reader = Reader {
                    client: self.client.clone(),
                    mode: mode.clone(),
                    stream_arn: self.stream_arn.clone(),
                    stream_name: self.stream_name.clone(),
                    shard: shard.clone(),
                    start,
                    lease: Some(token),
                    events: self.events.clone(),
                    status: self.shared.status.clone(),
                };
                reading.insert(shard.clone(), (token, readers.spawn(reader.run())));
            }
        }
    }

    /// Of a run's first listing, the shards passed over: starting at the
    /// tip, the history of shards already closed (and never read). Only at
    /// start: a shard that closes later was split or merged while being read.
    fn passed_over(&self, shards: &[Shard]) -> HashSet<String> {
        if self.start != Start::Latest {
            return HashSet::new();
        }
        let unread = |s: &&Shard| s.closed && !self.positions.contains_key(&s.id);
        shards.iter().filter(unread).map(|s| s.id.clone()).collect()
    }

    /// The shards as listed now, the closed ones noted (`None`: listing
    /// failed, and the source was told).
    async fn relist(&self) -> Option<Vec<Shard>> {
        match self.list_shards().await {
            Ok(shards) => {
                for s in shards.iter().filter(|s| s.closed) {
                    self.shared.status.closed(&s.id);
                }
                Some(shards)
            }
            Err(why) => {
                let _ = self.events.send(Event::Failed(why)).await;
                None
            }
        }
    }

    /// How the readers read: polling, or the enhanced fan-out consumer's
    /// subscription (`None`: that failed, and the source was told).
    async fn mode(&self) -> Option<Mode> {
        match &self.consumer {
            None => Some(Mode::Polling { at_tip: self.poll_interval }),
            Some(name) => match self.consumer_arn(name).await {
                Ok(consumer_arn) => Some(Mode::FanOut { consumer_arn }),
                Err(why) => {
                    let _ = self.events.send(Event::Failed(why)).await;
                    None
                }
            },
        }
    }

    /// The ARN of the enhanced fan-out consumer, registered if missing, once active.
    async fn consumer_arn(&self, name: &str) -> Result<String> {
        let failed =
            |e: &dyn std::error::Error| anyhow!("registering consumer {name}: {}", crate::aws::describe(e));
        match self
            .client
            .register_stream_consumer()
            .stream_arn(&self.stream_arn)
            .consumer_name(name)
            .send()
            .await
        {
            Ok(out) => tracing::info!(
                consumer = name,
                consumer_arn = out.consumer().map(|c| c.consumer_arn()),
                "registered the enhanced fan-out consumer"
            ),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(failed(&e)),
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_stream_consumer()
                .stream_arn(&self.stream_arn)
                .consumer_name(name)
                .send()
                .await
                .map_err(|e| failed(&e))?;
            let consumer = described
                .consumer_description()
                .ok_or_else(|| anyhow!("consumer {name} has no description"))?;
            if consumer.consumer_status().as_str() == "ACTIVE" {
                return Ok(consumer.consumer_arn().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("consumer {name} did not become active within a minute")
    }

    /// Every shard of the stream, following `NextToken`.
    async fn list_shards(&self) -> Result<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        let mut attempt = 0;
        loop {
            // ListShards takes either the stream or a token, not both.
            let request = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_arn(&self.stream_arn),
            };
            let page = match request.send().await {
                Ok(page) => page,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!("ListShards: {}; retrying", crate::aws::describe(&e));
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue;
                }
                Err(e) => bail!("listing the shards of {}: {}", self.stream_arn, crate::aws::describe(&e)),
            };
            shards.extend(page.shards().iter().map(|s| {
                Shard {
                    id: s.shard_id().to_owned(),
                    parents: s
                        .parent_shard_id()
                        .into_iter()
                        .chain(s.adjacent_parent_shard_id())
                        .map(str::to_owned)
                        .collect(),
                    closed: s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_some()),
                }
            }));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(shards);
            }
        }
    }
}
