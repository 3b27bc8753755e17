//! One shard, read to its end (or forever, if it is open).
//!
//! **Polling.** Kinesis allows 5 `GetRecords` calls and 2 MB per second per
//! shard, shared by every polling consumer. A reader calls at most every
//! 200 ms, waits longer after a large response (bytes / 2 MB/s), waits
//! `poll_interval_ms` when the shard is at its tip (empty responses) and
//! backs off exponentially when the service says it is over its limit; a
//! shard that is behind but
//! returned nothing (a gap in the stream) is polled again without idling.
//! An expired iterator (5 minutes unused, e.g. while the sink held the
//! pipeline back) is renewed after the last committed sequence number;
//! records read again are duplicates the ordering-safe upsert absorbs.
//! Before any commit, it is renewed after the last record read (or at the
//! start), so a `latest` start cannot skip what arrived meanwhile.
//!
//! **Enhanced fan-out.** With a registered consumer, `SubscribeToShard`
//! pushes records over a subscription that lasts up to 5 minutes, with 2 MB/s
//! per shard for this consumer alone. When it ends, the reader subscribes
//! again after the last continuation sequence number. A closed shard ends
//! when an event names its children; should that never come (kinesis-local
//! never sends it), a closed shard idle at the tip is asked once in a while
//! through `GetRecords` whether anything is left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use tokio::sync::mpsc::Sender;

use super::{Event, Status};
use crate::sources::ChangeRecords;

/// Records per `GetRecords` call: bounds what one event holds in memory.
const LIMIT: i32 = 1000;
/// At most 5 calls per second per shard.
const MIN_PAUSE: Duration = Duration::from_millis(200);
/// How often a closed, idle shard read by enhanced fan-out is checked for its end.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// The per-shard read limit, bytes per second.
const BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

/// Where a reader starts.
#[derive(Debug, Clone)]
pub(super) enum StartAt {
    After(String),
    TrimHorizon,
    Latest,
    Timestamp(aws_sdk_kinesis::primitives::DateTime),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// Over the shard's read limits: back off.
    #[error("read limit exceeded")]
    Throttled,
    /// The iterator is older than 5 minutes: get a new one.
    #[error("the shard iterator expired")]
    Expired,
    /// Worth retrying as is (network, service errors).
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: stop the pipeline.
    #[error("{0}")]
    Fatal(String),
}

/// Pauses between failed calls to a shard: doubling, up to 10 s.
struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration) -> Self {
        Backoff { first, next: first }
    }

    /// After a call that worked.
    fn reset(&mut self) {
        self.next = self.first;
    }

    /// Says what failed, then waits.
    async fn wait(&mut self, shard: &str, failed: String) {
        tracing::warn!(shard, retry_in_ms = self.next.as_millis() as u64, "{failed}; retrying");
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(10));
    }
}

impl ReadError {
    /// A fault injected by a test (`FAILPOINTS=kinesis::get_records=return(throttled)`).
    fn injected(kind: Option<String>) -> Self {
        match kind.as_deref() {
            Some("expired") => ReadError::Expired,
            Some("transient") => ReadError::Transient("injected fault".into()),
            _ => ReadError::Throttled,
        }
    }
}

/// How records reach the reader.
#[derive(Debug, Clone)]
pub(super) enum Mode {
    /// Polling, every `at_tip` when the shard is at its tip.
    Polling {
        at_tip: Duration,
    },
    FanOut {
        consumer_arn: String,
    },
}

pub(super) struct Reader {
    pub client: aws_sdk_kinesis::Client,
    pub mode: Mode,
    pub stream_arn: String,
    pub stream_name: Arc<str>,
    pub shard: String,
    pub start: StartAt,
    /// The lease counter this worker holds the shard under, if coordinated.
    pub lease: Option<i64>,
    pub events: Sender<Event>,
    pub status: Arc<Status>,
}

impl Reader {
    /// Reads the shard to its end (or forever, for an open shard). Ends by
    /// sending `Ended`, or `Failed` with the reason.
    pub async fn run(self) {
        let partition: Arc<str> = format!("{}/{}", self.stream_name, self.shard).into();
        let last = match &self.start {
            StartAt::After(seq) => Some(seq.clone()),
            _ => None,
        };
        match self.mode.clone() {
            Mode::Polling { at_tip } => self.poll(partition, last, at_tip).await,
            Mode::FanOut { consumer_arn } => self.subscribe(partition, last, &consumer_arn).await,
        }
    }

    /// Hands records over (waiting while the pipeline is busy); false if
    /// the source is gone.
    async fn deliver(&self, partition: &Arc<str>, records: Vec<Received>) -> bool {
        if records.is_empty() {
            return true;
        }
        let mut changes = ChangeRecords::default();
        let records =
            records.into_iter().map(|r| changes.record(r.payload, partition.clone(), r.sequence)).collect();
        self.events
            .send(Event::Records { partition: partition.clone(), records, lease: self.lease })
            .await
            .is_ok()
    }

    async fn end(&self, partition: Arc<str>, last: Option<String>) {
        let _ = self.events.send(Event::Ended { partition, last, lease: self.lease }).await;
        self.status.ended(&self.shard);
        tracing::info!(shard = self.shard, "shard read to its end");
    }

    async fn poll(&self, partition: Arc<str>, mut last: Option<String>, at_tip: Duration) {
        let mut iterator = None;
        let mut backoff = Backoff::new(MIN_PAUSE);
        loop {
            let it = match iterator.take() {
                Some(it) => it,
                None => match self.iterator(last.as_deref()).await {
                    Ok(it) => it,
                    Err(ReadError::Fatal(why)) => return self.fail(why).await,
                    Err(e) => {
                        backoff.wait(&self.shard, format!("getting a shard iterator: {e}")).await;
                        continue;
                    }
                },
            };
            let called = Instant::now();
            match self.get_records(&it).await {
                Ok(page) => {
                    backoff.reset();
                    let bytes: usize = page.records.iter().map(|r| r.payload.len()).sum();
                    let empty = page.records.is_empty();
                    if let Some(r) = page.records.last() {
                        last = Some(r.sequence.clone());
                    }
                    if !self.deliver(&partition, page.records).await {
                        return;
                    }
                    self.status.behind(&self.shard, page.millis_behind);
                    let Some(next) = page.next else {
                        return self.end(partition, last).await;
                    };
                    iterator = Some(next);
                    let pause = if empty && page.millis_behind.unwrap_or(0) == 0 {
                        at_tip
                    } else {
                        MIN_PAUSE.max(Duration::from_secs_f64(bytes as f64 / BYTES_PER_SEC))
                    };
                    tokio::time::sleep(pause.saturating_sub(called.elapsed())).await;
                }
                Err(ReadError::Expired) => {
                    if let Some(seq) = self.status.committed(&self.shard) {
                        last = Some(seq);
                    }
                    tracing::info!(shard = self.shard, after = last, "shard iterator expired; renewing it");
                }
                Err(e @ (ReadError::Throttled | ReadError::Transient(_))) => {
                    iterator = Some(it);
                    backoff.wait(&self.shard, format!("GetRecords: {e}")).await;
                }
                Err(ReadError::Fatal(why)) => return self.fail(why).await,
            }
        }
    }

    async fn fail(&self, why: String) {
        let failed = anyhow::anyhow!("reading shard {} of {}: {why}", self.shard, self.stream_arn);
        let _ = self.events.send(Event::Failed(failed)).await;
    }

    async fn subscribe(&self, partition: Arc<str>, mut last: Option<String>, consumer_arn: &str) {
        let mut continuation = last.clone();
        let mut backoff = Backoff::new(Duration::from_secs(1));
        loop {
            let position = match (&continuation, &self.start) {
                (Some(seq), _) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                (None, StartAt::Latest) => StartingPosition::builder().r#type(ShardIteratorType::Latest),
                (None, StartAt::Timestamp(t)) => {
                    StartingPosition::builder().r#type(ShardIteratorType::AtTimestamp).timestamp(*t)
                }
                (None, _) => StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon),
            };
            let position = position.build().expect("a starting position has a type");
            let subscribed = self
                .client
                .subscribe_to_shard()
                .consumer_arn(consumer_arn)
                .shard_id(&self.shard)
                .starting_position(position)
                .send()
                .await;
            let mut events = match subscribed {
                Ok(out) => out.event_stream,
                Err(e) => match classify(e) {
                    ReadError::Fatal(why) if !why.starts_with("ResourceInUseException") => {
                        return self.fail(why).await;
                    }
                    // The previous subscription (perhaps of a crashed run) is still open, or
                    // we subscribe too often: wait and try again.
                    e => {
                        backoff.wait(&self.shard, format!("SubscribeToShard: {e}")).await;
                        continue;
                    }
                },
            };
            backoff.reset();
            let mut probed = Instant::now();
            // A subscription lasts up to 5 minutes; then subscribe again.
            loop {
                match events.recv().await {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                        tracing::debug!(
                            shard = self.shard,
                            records = event.records().len(),
                            continuation = event.continuation_sequence_number(),
                            children = event.child_shards().len(),
                            "subscription event"
                        );
                        let records: Vec<Received> = event
                            .records()
                            .iter()
                            .map(|r| Received {
                                payload: r.data().as_ref().to_vec(),
                                sequence: r.sequence_number().to_owned(),
                            })
                            .collect();
                        if let Some(r) = records.last() {
                            last = Some(r.sequence.clone());
                        }
                        if !self.deliver(&partition, records).await {
                            return;
                        }
                        self.status.behind(&self.shard, Some(event.millis_behind_latest()));
                        if event.continuation_sequence_number().is_empty() || !event.child_shards().is_empty()
                        {
                            return self.end(partition, last).await;
                        }
                        continuation = Some(event.continuation_sequence_number().to_owned());
                        let idle = event.records().is_empty() && event.millis_behind_latest() == 0;
                        if idle && probed.elapsed() >= PROBE_EVERY && self.status.is_closed(&self.shard) {
                            probed = Instant::now();
                            if self.read_to_end(continuation.as_deref()).await {
                                return self.end(partition, last).await;
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(
                            shard = self.shard,
                            "subscription broke: {}; subscribing again",
                            crate::aws::describe(&e)
                        );
                        break;
                    }
                }
            }
        }
    }

    /// Whether a closed shard has nothing after `after`: a `GetRecords` call
    /// there returns no records and no next iterator.
    async fn read_to_end(&self, after: Option<&str>) -> bool {
        let page = match self.iterator(after).await {
            Ok(it) => self.get_records(&it).await,
            Err(e) => Err(e),
        };
        match page {
            Ok(page) => page.records.is_empty() && page.next.is_none(),
            Err(e) => {
                tracing::debug!(shard = self.shard, "checking whether the closed shard ended: {e}");
                false
            }
        }
    }

    async fn iterator(&self, after: Option<&str>) -> Result<String, ReadError> {
        let mut request = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(&self.shard);
        request = match (after, &self.start) {
            (Some(seq), _) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, StartAt::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartAt::Timestamp(t)) => {
                request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(*t)
            }
            (None, _) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = request.send().await.map_err(classify)?;
        out.shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| ReadError::Transient("no shard iterator returned".into()))
    }

    async fn get_records(&self, iterator: &str) -> Result<Page, ReadError> {
        fail::fail_point!("kinesis::get_records", |kind| Err(ReadError::injected(kind)));
        let out = self
            .client
            .get_records()
            .stream_arn(&self.stream_arn)
            .shard_iterator(iterator)
            .limit(LIMIT)
            .send()
            .await
            .map_err(classify)?;
        Ok(Page {
            records: out
                .records()
                .iter()
                .map(|r| Received {
                    payload: r.data().as_ref().to_vec(),
                    sequence: r.sequence_number().to_owned(),
                })
                .collect(),
            next: out.next_shard_iterator().map(str::to_owned),
            millis_behind: out.millis_behind_latest(),
        })
    }
}

struct Received {
    payload: Vec<u8>,
    sequence: String,
}

struct Page {
    records: Vec<Received>,
    /// `None` once a closed shard is read to its end.
    next: Option<String>,
    millis_behind: Option<i64>,
}

fn classify<E, R>(e: SdkError<E, R>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(s) => match s.err().code() {
            Some(code) => service_error(code, s.err().message().unwrap_or("no message")),
            // A bare HTTP 5xx without an error code.
            None => ReadError::Transient(format!("{:?}", s.raw())),
        },
        _ => ReadError::Transient(crate::aws::describe(&e)),
    }
}

/// What a Kinesis error code means for the reader.
fn service_error(code: &str, message: &str) -> ReadError {
    match code {
        // KMS throttles the decryption of an encrypted stream's records.
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "KMSThrottlingException" => ReadError::Throttled,
        "ExpiredIteratorException" => ReadError::Expired,
        "InternalFailureException" | "ServiceUnavailable" | "InternalFailure" => {
            ReadError::Transient(format!("{code}: {message}"))
        }
        _ => ReadError::Fatal(format!("{code}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_by_kms_is_ridden_out_and_a_disabled_key_is_not() {
        assert!(matches!(service_error("KMSThrottlingException", "slow down"), ReadError::Throttled));
        assert!(matches!(service_error("ProvisionedThroughputExceededException", ""), ReadError::Throttled));
        assert!(matches!(service_error("KMSDisabledException", "disabled"), ReadError::Fatal(_)));
        assert!(matches!(service_error("AccessDeniedException", "no"), ReadError::Fatal(_)));
    }
}
