//! Narrowing a failing batch down to the records that cause the failure.
//!
//! When a call traps, runs out of time or memory, or miscounts its outcomes,
//! the instance is replaced and the batch is retried in halves, recursively,
//! until the failing pieces are single records. Those records get the
//! failure as their reason; every other record gets its real outcome. A batch
//! with one poison record costs about 2·log2(n) extra calls.

use anyhow::Result;

use super::bindings::types;
use super::instance::{Fault, TableGuest};

pub(super) fn run(
    guest: &mut TableGuest,
    batch: u64,
    records: &[types::SourceRecord],
) -> Result<Vec<Result<types::Outcome, String>>> {
    match guest.call(records) {
        Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
        Err(Fault(reason)) => {
            tracing::warn!(
                table = guest.table(),
                transform = guest.transform_name(),
                batch,
                records = records.len(),
                "{reason}; narrowing the batch down on a fresh instance"
            );
            guest.restart()?;
            narrow(guest, records, reason)
        }
    }
}

fn narrow(
    guest: &mut TableGuest,
    records: &[types::SourceRecord],
    reason: String,
) -> Result<Vec<Result<types::Outcome, String>>> {
    if records.len() == 1 {
        return Ok(vec![Err(reason)]);
    }
    let (left, right) = records.split_at(records.len() / 2);
    let mut results = Vec::with_capacity(records.len());
    for piece in [left, right] {
        match guest.call(piece) {
            Ok(outcomes) => results.extend(outcomes.into_iter().map(Ok)),
            Err(Fault(reason)) => {
                guest.restart()?;
                results.extend(narrow(guest, piece, reason)?);
            }
        }
    }
    Ok(results)
}
