//! Group commit: the hand-over between the reading side and the sink
//! thread. One batch waits while the sink writes the previous one; batches
//! transformed meanwhile are merged into the waiting one, up to
//! `max_coalesce` records, so a sink whose commits take a second writes
//! large transactions under load and small ones when records trickle. When
//! the waiting batch is full, the reading side waits, so memory stays bounded.

use std::sync::{Condvar, Mutex};

use super::{Pending, dedupe};
use crate::record::Checkpoint;

pub(super) struct Slot {
    state: Mutex<State>,
    changed: Condvar,
    /// Records one merged batch may hold; 0 never merges.
    max_records: usize,
    /// Sinks that keep every change get distinct changes, not the latest.
    keeps_every_change: bool,
}

#[derive(Default)]
struct State {
    waiting: Option<Pending>,
    /// The reading side is done: the sink thread ends once it is empty.
    closed: bool,
    /// The sink thread stopped (it failed): nothing more is taken.
    writer_gone: bool,
}

/// The sink thread stopped; the batch was not handed over.
pub(super) struct WriterGone;

impl Slot {
    pub fn new(max_records: usize, keeps_every_change: bool) -> Self {
        Slot { state: Mutex::default(), changed: Condvar::new(), max_records, keeps_every_change }
    }

    /// Hands a batch to the sink thread, merged into the one waiting if
    /// both fit in one transaction, else after the waiting one is taken.
    /// Returns the rows the merge dropped for a newer change to their item.
    pub fn put(&self, mut batch: Pending) -> Result<u64, WriterGone> {
        let mut state = self.state.lock().expect("slot lock");
        loop {
            if state.writer_gone {
                return Err(WriterGone);
            }
            match state.waiting.take() {
                None => {
                    state.waiting = Some(batch);
                    self.changed.notify_all();
                    return Ok(0);
                }
                Some(waiting) if waiting.batch.records + batch.batch.records <= self.max_records as u64 => {
                    let superseded = self.merge(&mut batch, waiting);
                    state.waiting = Some(batch);
                    return Ok(superseded);
                }
                Some(waiting) => {
                    state.waiting = Some(waiting);
                    state = self.changed.wait(state).expect("slot lock");
                }
            }
        }
    }

    /// The next batch to write; `None` once the reading side is done and
    /// nothing waits.
    pub fn take(&self) -> Option<Pending> {
        let mut state = self.state.lock().expect("slot lock");
        loop {
            if let Some(batch) = state.waiting.take() {
                self.changed.notify_all();
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).expect("slot lock");
        }
    }

    /// The reading side is done.
    pub fn close(&self) {
        self.state.lock().expect("slot lock").closed = true;
        self.changed.notify_all();
    }

    /// The sink thread stopped; a reader waiting to hand over gives up.
    pub fn writer_gone(&self) {
        self.state.lock().expect("slot lock").writer_gone = true;
        self.changed.notify_all();
    }

    /// Merges `earlier` into `later` as if read as one batch.
    fn merge(&self, later: &mut Pending, earlier: Pending) -> u64 {
        let (mut rows, mut dead, mut micros) =
            (earlier.batch.rows, earlier.batch.dead_letters, earlier.change_micros);
        rows.append(&mut later.batch.rows);
        dead.append(&mut later.batch.dead_letters);
        micros.append(&mut later.change_micros);
        let (rows, superseded) = dedupe::for_sink(rows, self.keeps_every_change);
        let b = &mut later.batch;
        b.rows = rows;
        b.dead_letters = dead;
        b.records += earlier.batch.records;
        b.checkpoints = newest(earlier.batch.checkpoints, std::mem::take(&mut b.checkpoints));
        later.reached = newest(earlier.reached, std::mem::take(&mut later.reached));
        later.change_micros = micros;
        superseded
    }
}

/// Each partition's newest position: `later`'s where both have one.
fn newest(mut earlier: Vec<Checkpoint>, later: Vec<Checkpoint>) -> Vec<Checkpoint> {
    for c in later {
        match earlier.iter_mut().find(|e| e.partition == c.partition) {
            Some(e) => *e = c,
            None => earlier.push(c),
        }
    }
    earlier
}
