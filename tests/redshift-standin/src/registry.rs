//! What the stand-in remembers: every statement it was given with its
//! status and results, every SQL text in order, and the faults a test asked
//! for. The HTTP handlers and the executor share it behind one mutex, held
//! only for short, non-async updates.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::CallFault;
use crate::results::Outcome;

/// The Data API's StatusString (PICKED is never reported: a statement goes
/// from SUBMITTED straight to STARTED when the executor takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Started,
    Finished,
    Aborted,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Started => "STARTED",
            Status::Finished => "FINISHED",
            Status::Aborted => "ABORTED",
            Status::Failed => "FAILED",
        }
    }

    pub(crate) fn is_done(self) -> bool {
        matches!(self, Status::Finished | Status::Aborted | Status::Failed)
    }
}

/// Where a statement was sent, echoed back in responses.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workgroup_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
}

/// The Data API's SqlParameter (its members are lower-case on the wire).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct SqlParameter {
    pub name: String,
    pub value: String,
}

/// Timing shared by statements and sub-statements.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    started: Option<Instant>,
    pub duration: Option<Duration>,
}

impl Clock {
    fn new() -> Clock {
        let now = SystemTime::now();
        Clock { created_at: now, updated_at: now, started: None, duration: None }
    }

    fn start(&mut self) {
        self.updated_at = SystemTime::now();
        self.started = Some(Instant::now());
    }

    fn stop(&mut self) {
        self.updated_at = SystemTime::now();
        self.duration = Some(self.started.map_or(Duration::ZERO, |s| s.elapsed()));
    }
}

/// One SQL text of a statement (a plain statement has exactly one).
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The SQL as sent, before parameters were bound.
    pub query: String,
    pub status: Status,
    pub error: Option<String>,
    pub clock: Clock,
    /// Set when the part finished.
    pub outcome: Option<Outcome>,
    pub query_id: i64,
}

/// A statement: one ExecuteStatement or one BatchExecuteStatement.
pub(crate) struct Statement {
    pub target: Target,
    pub batch: bool,
    pub parameters: Vec<SqlParameter>,
    pub status: Status,
    pub error: Option<String>,
    pub clock: Clock,
    pub pid: Option<i64>,
    pub parts: Vec<Part>,
    /// Set by CancelStatement while it runs; the executor acts on it.
    pub cancel_requested: bool,
}

impl Statement {
    /// SUBMITTED -> STARTED; false if it was cancelled while it waited.
    pub(crate) fn begin(&mut self) -> bool {
        if self.status != Status::Submitted {
            return false;
        }
        self.status = Status::Started;
        self.clock.start();
        true
    }

    pub(crate) fn start_part(&mut self, i: usize) {
        self.parts[i].status = Status::Started;
        self.parts[i].clock.start();
    }

    pub(crate) fn finish_part(&mut self, i: usize, outcome: Outcome) {
        let part = &mut self.parts[i];
        part.status = Status::Finished;
        part.outcome = Some(outcome);
        part.clock.stop();
        self.clock.updated_at = part.clock.updated_at;
    }

    /// Part `i` failed with `error` (or was cancelled): it ends FAILED (or
    /// ABORTED), the parts after it never run, and so does the statement.
    pub(crate) fn fail(&mut self, i: usize, error: String) {
        let status = if self.cancel_requested { Status::Aborted } else { Status::Failed };
        for (j, part) in self.parts.iter_mut().enumerate().skip(i) {
            if j == i {
                part.status = status;
                part.error = Some(error.clone());
            } else {
                part.status = Status::Aborted;
            }
            part.clock.stop();
        }
        self.end(status, Some(error));
    }

    /// Every part finished (a batch's transaction committed).
    pub(crate) fn finish(&mut self) {
        self.end(Status::Finished, None);
    }

    /// The statement as a whole failed after its parts ran (a failed COMMIT).
    pub(crate) fn fail_after_parts(&mut self, error: String) {
        self.end(Status::Failed, Some(error));
    }

    /// Cancelled before it started: nothing ran.
    pub(crate) fn abort_waiting(&mut self) {
        for part in &mut self.parts {
            part.status = Status::Aborted;
            part.clock.stop();
        }
        self.end(Status::Aborted, None);
    }

    fn end(&mut self, status: Status, error: Option<String>) {
        self.status = status;
        self.error = error;
        self.clock.stop();
    }
}

/// A new statement as the API handlers hand it over.
pub(crate) struct NewStatement {
    pub id: String,
    pub client_token: Option<String>,
    pub target: Target,
    pub batch: bool,
    pub parameters: Vec<SqlParameter>,
    pub sqls: Vec<String>,
}

/// What [`Registry::submit`] decided.
pub(crate) struct Submitted {
    pub id: String,
    pub created_at: SystemTime,
    /// False when the client token was seen before: the earlier statement
    /// is returned and nothing runs again.
    pub is_new: bool,
    /// Set when a test asked for this statement to fail.
    pub injected_failure: Option<String>,
}

#[derive(Default)]
struct Inner {
    statements: HashMap<String, Statement>,
    client_tokens: HashMap<String, String>,
    log: Vec<String>,
    throttle: u32,
    failures: u32,
    failure_text: String,
    call_faults: u32,
    call_fault: Option<CallFault>,
    lost_responses: u32,
    /// Only calls whose SQL contains this lose their responses.
    lost_needle: String,
    next_query_id: i64,
}

impl Inner {
    /// Records a new statement, SUBMITTED, and logs its SQL.
    fn insert(&mut self, new: NewStatement) -> (String, SystemTime) {
        self.log.extend(new.sqls.iter().cloned());
        let clock = Clock::new();
        let mut parts = Vec::new();
        for query in new.sqls {
            self.next_query_id += 1;
            parts.push(Part {
                query,
                status: Status::Submitted,
                error: None,
                clock: clock.clone(),
                outcome: None,
                query_id: self.next_query_id,
            });
        }
        let statement = Statement {
            target: new.target,
            batch: new.batch,
            parameters: new.parameters,
            status: Status::Submitted,
            error: None,
            clock: clock.clone(),
            pid: None,
            parts,
            cancel_requested: false,
        };
        self.statements.insert(new.id.clone(), statement);
        (new.id, clock.created_at)
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated in a way that
        // matters to a test double; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn throttle_next(&self, n: u32) {
        self.lock().throttle = n;
    }

    /// True if this API call is to be throttled (and counts it).
    pub(crate) fn take_throttle(&self) -> bool {
        let mut inner = self.lock();
        let throttled = inner.throttle > 0;
        inner.throttle = inner.throttle.saturating_sub(1);
        throttled
    }

    pub(crate) fn fail_next_statements(&self, n: u32, error: &str) {
        let mut inner = self.lock();
        inner.failures = n;
        inner.failure_text = error.to_string();
    }

    pub(crate) fn fail_next_calls(&self, n: u32, kind: CallFault) {
        let mut inner = self.lock();
        inner.call_faults = n;
        inner.call_fault = Some(kind);
    }

    /// The fault this statement call is to answer with, if any (and counts it).
    pub(crate) fn take_call_fault(&self) -> Option<CallFault> {
        let mut inner = self.lock();
        if inner.call_faults == 0 {
            return None;
        }
        inner.call_faults -= 1;
        inner.call_fault
    }

    pub(crate) fn lose_next_responses(&self, n: u32, needle: &str) {
        let mut inner = self.lock();
        inner.lost_responses = n;
        inner.lost_needle = needle.to_owned();
    }

    /// True if the response to a call with these SQL texts is to be lost
    /// (and counts it).
    pub(crate) fn take_lost_response(&self, sqls: &[String]) -> bool {
        let mut inner = self.lock();
        let lost = inner.lost_responses > 0 && sqls.iter().any(|s| s.contains(&inner.lost_needle));
        if lost {
            inner.lost_responses -= 1;
        }
        lost
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub(crate) fn submit(&self, new: NewStatement) -> Submitted {
        let mut inner = self.lock();
        let earlier = new.client_token.as_ref().and_then(|t| inner.client_tokens.get(t)).cloned();
        if let Some(id) = earlier {
            let created_at = inner.statements[&id].clock.created_at;
            return Submitted { id, created_at, is_new: false, injected_failure: None };
        }
        if let Some(token) = &new.client_token {
            inner.client_tokens.insert(token.clone(), new.id.clone());
        }
        let injected_failure = (inner.failures > 0).then(|| inner.failure_text.clone());
        inner.failures = inner.failures.saturating_sub(1);
        let (id, created_at) = inner.insert(new);
        Submitted { id, created_at, is_new: true, injected_failure }
    }

    /// Creates a statement that ended FAILED with `error` before it ran; its
    /// client token is not kept and the injected failures are not counted.
    pub(crate) fn create_failed(&self, new: NewStatement, error: &str) -> String {
        let mut inner = self.lock();
        let (id, _) = inner.insert(NewStatement { client_token: None, ..new });
        if let Some(statement) = inner.statements.get_mut(&id) {
            statement.begin();
            statement.fail(0, error.to_string());
        }
        id
    }

    /// Runs `f` on statement `id`, if there is one.
    pub(crate) fn with<R>(&self, id: &str, f: impl FnOnce(&mut Statement) -> R) -> Option<R> {
        self.lock().statements.get_mut(id).map(f)
    }
}
