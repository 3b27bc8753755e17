//! `[source] type = "kinesis"`: the manifest section and what it resolves
//! to. An export's `then` is the same section, with `margin`.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError};

/// `[source] type = "kinesis"`: a Kinesis data stream fed by "Kinesis Data
/// Streams for DynamoDB".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The stream's ARN (the seed's StreamARN); every call goes by ARN.
    pub stream_arn: Spanned<String>,
    /// A role to assume through STS for reading, e.g. in another account
    /// (the seed's KinesisRoleARN).
    pub role_arn: Option<Spanned<String>>,
    /// Where shards without a checkpoint start: `trim_horizon` (default,
    /// everything retained), `latest` (only new records) or `at_timestamp`.
    pub start: Option<Spanned<String>>,
    /// For `start = "at_timestamp"`: an RFC 3339 time, e.g. `2026-01-01T00:00:00Z`.
    pub timestamp: Option<Spanned<String>>,
    /// Read with enhanced fan-out as this consumer (registered if missing):
    /// 2 MB/s per shard of its own and records pushed as they arrive,
    /// instead of polling.
    pub consumer: Option<Spanned<String>>,
    /// When polling: how often a shard at its tip is asked for new records,
    /// in milliseconds (default 250, at least 200). Kinesis allows 5
    /// `GetRecords` calls per second per shard, shared by every polling
    /// consumer of the stream: raise it when others poll the same stream.
    pub poll_interval_ms: Option<Spanned<i64>>,
    /// Only under an export's `then`: how long before the export's
    /// `exportTime` the stream is read from (default `5m`), e.g. `"15m"`.
    pub margin: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub stream_arn: String,
    pub role_arn: Option<String>,
    pub start: Start,
    /// Enhanced fan-out through this consumer, instead of polling.
    pub consumer: Option<String>,
    /// When polling, how often a shard at its tip is polled.
    pub poll_interval: Duration,
}

/// A shard at its tip is polled 4 times a second: a change waits at most a
/// quarter second to be read, and a fifth of the shard's 5 calls per second
/// is left for other consumers.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Where shards without a checkpoint and without a parent start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    TrimHorizon,
    Latest,
    AtTimestamp(SystemTime),
}

impl Section {
    /// `[source] type = "kinesis"` itself, where `margin` has no meaning.
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        if let Some(m) = &self.margin {
            return Err(cx.err(m, "margin applies only to the stream under an export's `then`"));
        }
        self.resolve_stream(cx)
    }

    /// The stream, wherever it is named.
    pub fn resolve_stream(self, cx: &Context) -> Result<Config, ManifestError> {
        let arn = self.stream_arn.get_ref();
        if !(arn.starts_with("arn:") && arn.contains(":kinesis:") && arn.contains(":stream/")) {
            return Err(cx.err(
                &self.stream_arn,
                "expected a Kinesis stream ARN, arn:aws:kinesis:<region>:<account>:stream/<name>",
            ));
        }
        let start = match (self.start.as_ref().map(|v| (v, v.get_ref().as_str())), &self.timestamp) {
            (None | Some((_, "trim_horizon")), None) => Start::TrimHorizon,
            (Some((_, "latest")), None) => Start::Latest,
            (Some((_, "at_timestamp")), Some(t)) => {
                Start::AtTimestamp(humantime::parse_rfc3339_weak(t.get_ref()).map_err(|e| {
                    cx.err(t, format!("not an RFC 3339 time ({e}), e.g. 2026-01-01T00:00:00Z"))
                })?)
            }
            (Some((v, "at_timestamp")), None) => {
                return Err(cx.err(v, "start = \"at_timestamp\" needs timestamp"));
            }
            (_, Some(t)) => return Err(cx.err(t, "timestamp goes with start = \"at_timestamp\"")),
            (Some((v, other)), None) => {
                return Err(
                    cx.err(v, format!("start is {other:?}; it must be trim_horizon, latest or at_timestamp"))
                );
            }
        };
        if let Some(c) = &self.consumer {
            let name = c.get_ref();
            let valid = !name.is_empty() && name.len() <= 128;
            if !valid || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
                return Err(cx.err(c, "a consumer name is 1 to 128 letters, digits, '_', '.' or '-'"));
            }
        }
        if let (Some(p), Some(_)) = (&self.poll_interval_ms, &self.consumer) {
            return Err(cx.err(p, "poll_interval_ms applies to polling; with a consumer, records are pushed"));
        }
        let poll_interval = cx
            .int(&self.poll_interval_ms, 200, 60_000)?
            .map_or(POLL_INTERVAL, |ms| Duration::from_millis(ms as u64));
        Ok(Config {
            stream_arn: self.stream_arn.into_inner(),
            role_arn: self.role_arn.map(Spanned::into_inner),
            start,
            consumer: self.consumer.map(Spanned::into_inner),
            poll_interval,
        })
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kinesis {}", self.stream_arn)?;
        if let Some(role) = &self.role_arn {
            write!(f, " as {role}")?;
        }
        if let Some(consumer) = &self.consumer {
            write!(f, ", enhanced fan-out as {consumer}")?;
        }
        match &self.start {
            Start::TrimHorizon => write!(f, ", new shards from the oldest record"),
            Start::Latest => write!(f, ", new shards from the newest record"),
            Start::AtTimestamp(t) => write!(f, ", new shards from {}", humantime::format_rfc3339(*t)),
        }
    }
}
