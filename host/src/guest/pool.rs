//! Several instances of one table's transform, so that a batch is
//! transformed on several cores at once.
//!
//! A batch is cut into contiguous runs of records, one per instance, each
//! transformed on its own thread, and the outcomes are joined back in the
//! records' order. What follows (checks, the latest change per item) sees
//! exactly what one instance would have returned, so the order of an item's
//! changes holds however the batch was cut. Each instance isolates its own
//! failures (`isolate.rs`) and keeps its own memory cap and time budget.

use anyhow::Result;

use super::{Fetch, TableGuest};
use crate::record::{Outcome, SourceRecord};

/// Fewer records than this for each instance are not worth a thread: the
/// built-in decoder takes about 3 µs a record, starting a thread about 30.
const MIN_RECORDS_PER_INSTANCE: usize = 100;

/// A table's instances: the first started with the table, the others the
/// first time a batch is large enough to use them.
pub struct GuestPool {
    guests: Vec<TableGuest>,
    /// The most instances a batch is spread over.
    threads: usize,
}

impl GuestPool {
    pub fn new(first: TableGuest, threads: usize) -> Self {
        GuestPool { guests: vec![first], threads: threads.max(1) }
    }

    /// Lets every instance's `fetch` read what `fetch` allows.
    pub fn allow_fetch(&mut self, fetch: Fetch) {
        for guest in &mut self.guests {
            guest.allow_fetch(fetch.clone());
        }
    }

    /// One outcome per record, in the records' order (see
    /// [`TableGuest::transform`]).
    pub fn transform(&mut self, batch: u64, records: &mut [SourceRecord]) -> Result<Vec<Outcome>> {
        let runs = (records.len() / MIN_RECORDS_PER_INSTANCE).clamp(1, self.threads);
        if runs == 1 {
            return self.guests[0].transform(batch, records);
        }
        if self.guests.len() < runs {
            tracing::debug!(
                table = self.guests[0].table(),
                instances = runs,
                "sharing batches among more instances"
            );
        }
        while self.guests.len() < runs {
            let another = self.guests[0].another()?;
            self.guests.push(another);
        }
        let per_run = records.len().div_ceil(runs);
        std::thread::scope(|scope| {
            let mut pieces = records.chunks_mut(per_run).zip(&mut self.guests);
            let (records, first) = pieces.next().expect("a batch of records");
            let others = pieces
                .map(|(records, guest)| {
                    std::thread::Builder::new()
                        .name("sluice-guest".into())
                        .spawn_scoped(scope, move || guest.transform(batch, records))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut outcomes = first.transform(batch, records)?;
            for other in others {
                outcomes.extend(other.join().expect("a guest thread panicked")?);
            }
            Ok(outcomes)
        })
    }
}
