//! Narrowing a failing batch down to the records that cause the failure.
//!
//! When a call traps, runs out of memory or miscounts its outcomes, the
//! instance is replaced and the batch is retried in halves, recursively,
//! until the failing pieces are single records: a trap is quick, so a batch
//! with one poison record costs about 2·log2(n) cheap calls. When a call runs
//! out of time (a loop), halving would spend a budget at every level; the
//! records are retried one by one instead, each with one record's budget, so
//! a looping record costs about one batch budget to find and one record's
//! budget to isolate. The failing records get the failure as their reason;
//! every other record gets its real outcome.

use std::time::Instant;

use anyhow::Result;

use super::bindings::types;
use super::instance::{Fault, TableGuest, outcome};
use crate::record::Outcome;

pub(super) fn run(
    guest: &mut TableGuest,
    batch: u64,
    records: &[types::SourceRecord],
) -> Result<Vec<Outcome>> {
    let fault = match guest.call(records) {
        Ok(outcomes) => return Ok(outcomes.into_iter().map(outcome).collect()),
        Err(fault) => fault,
    };
    let started = Instant::now();
    tracing::warn!(
        table = guest.table(),
        transform = guest.transform_name(),
        batch,
        records = records.len(),
        "{}; narrowing the batch down on a fresh instance",
        fault.reason
    );
    guest.restart()?;
    let mut calls = Calls { made: 1, timed_out: u64::from(fault.timed_out) };
    let results = narrow(guest, records, fault, &mut calls)?;
    tracing::info!(
        table = guest.table(),
        batch,
        isolated = results.iter().filter(|o| matches!(o, Outcome::Fault(_))).count(),
        calls = calls.made,
        timed_out = calls.timed_out,
        took_ms = started.elapsed().as_millis() as u64,
        "isolated the records the transform fails on"
    );
    Ok(results)
}

/// What isolating a failure cost: calls made, and calls that ran out of time.
struct Calls {
    made: u64,
    timed_out: u64,
}

impl Calls {
    fn call(
        &mut self,
        guest: &mut TableGuest,
        records: &[types::SourceRecord],
    ) -> Result<Result<Vec<types::Outcome>, Fault>> {
        self.made += 1;
        let result = guest.call(records);
        if let Err(fault) = &result {
            self.timed_out += u64::from(fault.timed_out);
            guest.restart()?;
        }
        Ok(result)
    }
}

fn narrow(
    guest: &mut TableGuest,
    records: &[types::SourceRecord],
    fault: Fault,
    calls: &mut Calls,
) -> Result<Vec<Outcome>> {
    if records.len() == 1 {
        return Ok(vec![Outcome::Fault(fault.reason)]);
    }
    let mut results = Vec::with_capacity(records.len());
    if fault.timed_out {
        for record in records {
            results.push(match calls.call(guest, std::slice::from_ref(record))? {
                Ok(mut outcomes) => outcome(outcomes.remove(0)),
                Err(fault) => Outcome::Fault(fault.reason),
            });
        }
        return Ok(results);
    }
    let (left, right) = records.split_at(records.len() / 2);
    for piece in [left, right] {
        match calls.call(guest, piece)? {
            Ok(outcomes) => results.extend(outcomes.into_iter().map(outcome)),
            Err(fault) => results.extend(narrow(guest, piece, fault, calls)?),
        }
    }
    Ok(results)
}
