//! Retrying a sink's unit of work: which failures are worth another try,
//! and how long to keep trying.

use std::time::{Duration, Instant};

use anyhow::Result;

/// How long a sink keeps retrying one unit of work before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// Transient failures that outlasted the retry window: the error's
/// context that makes it a [`SinkError::Transient`](super::SinkError).
#[derive(Debug)]
pub(super) struct GaveUp(pub String);

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: still failing after {RETRY_FOR:?}, giving up", self.0)
    }
}

/// Why an attempt failed, and whether another attempt may succeed.
pub(super) enum Failure {
    /// Transient: a lost connection, a restart, throttling, a serialization conflict.
    Retry(anyhow::Error),
    /// Anything else: stop, with the position uncommitted.
    Stop(anyhow::Error),
}

impl Failure {
    pub(super) fn into_error(self) -> anyhow::Error {
        match self {
            Failure::Retry(e) | Failure::Stop(e) => e,
        }
    }
}

/// Runs `attempt` on `state` until it succeeds, fails for good, or has kept
/// failing transiently for five minutes, pausing with exponential backoff.
/// `reset` runs before each new attempt (e.g. to drop a broken connection).
pub(super) fn retrying<S, T>(
    state: &mut S,
    what: &str,
    mut attempt: impl FnMut(&mut S) -> Result<T, Failure>,
    mut reset: impl FnMut(&mut S),
) -> Result<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let e = match attempt(state) {
            Ok(value) => return Ok(value),
            Err(Failure::Stop(e)) => return Err(e.context(format!("{what} failed"))),
            Err(Failure::Retry(e)) => e,
        };
        if started.elapsed() > RETRY_FOR {
            return Err(e.context(GaveUp(what.to_owned())));
        }
        tracing::warn!(retry_in_ms = pause.as_millis() as u64, "{what}: {e:#}; retrying");
        reset(state);
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
