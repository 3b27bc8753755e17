//! Group commit: the hand-over between the reading side and the sink
//! thread. One batch waits while the sink writes the previous one; batches
//! transformed meanwhile are merged into the waiting one, up to
//! `max_coalesce` records, so a sink whose commits take a second writes
//! large transactions under load and small ones when records trickle. When
//! the waiting batch is full, the reading side waits, so memory stays bounded.
//!
//! A batch cut from a backlog (a size limit cut it, so more records were
//! ready) is not sent alone to an idle sink: the sink thread waits for the
//! transaction to fill, at most as long as the last commit took (at first,
//! the sink's start-up) and never past `max_wait`. On a warehouse whose
//! commits take a second, catching up starts with a full transaction and
//! saves a commit; a sink that commits in milliseconds does not wait, and a
//! record that trickles in is sent at once.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Pending, dedupe};
use crate::record::Checkpoint;

/// Below this a commit is local and cheap (SQLite commits a batch in a few
/// milliseconds): waiting would only grow transactions, and merging them
/// costs the reading side time that a 2-core machine's sink thread needs.
const WORTH_WAITING: Duration = Duration::from_millis(100);

pub(super) struct Slot {
    state: Mutex<State>,
    changed: Condvar,
    /// Records one merged batch may hold; 0 never merges.
    max_records: usize,
    /// The longest a batch cut from a backlog waits for more.
    max_fill_wait: Duration,
    /// Sinks that keep every change get distinct changes, not the latest.
    keeps_every_change: bool,
}

#[derive(Default)]
struct State {
    waiting: Option<Pending>,
    /// How long a batch cut from a backlog waits now: the last commit's time.
    fill_wait: Duration,
    /// The reading side waits: its batch does not fit in the waiting one.
    reader_waits: bool,
    /// The reading side is done: the sink thread ends once it is empty.
    closed: bool,
    /// The sink thread stopped (it failed): nothing more is taken.
    writer_gone: bool,
}

/// The sink thread stopped; the batch was not handed over.
pub(super) struct WriterGone;

impl Slot {
    pub fn new(max_records: usize, max_fill_wait: Duration, keeps_every_change: bool) -> Self {
        Slot {
            state: Mutex::default(),
            changed: Condvar::new(),
            max_records,
            max_fill_wait,
            keeps_every_change,
        }
    }

    /// What the sink's last commit (or its start-up) took: as long, within
    /// `max_wait`, the next batch cut from a backlog waits to fill, if the
    /// commit was slow enough for one saved to matter.
    pub fn commit_took(&self, took: Duration) {
        let wait = if took < WORTH_WAITING { Duration::ZERO } else { took.min(self.max_fill_wait) };
        self.state.lock().expect("slot lock").fill_wait = wait;
    }

    /// Hands a batch to the sink thread, merged into the one waiting if
    /// both fit in one transaction, else after the waiting one is taken.
    /// Returns the rows the merge dropped for a newer change to their item.
    /// (Reducing the rows at every merge, not once at the take, holds less
    /// where items repeat; deferring it was no faster in `slow_sink`.)
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
                    self.changed.notify_all();
                    return Ok(superseded);
                }
                Some(waiting) => {
                    state.waiting = Some(waiting);
                    state.reader_waits = true;
                    self.changed.notify_all();
                    state = self.changed.wait(state).expect("slot lock");
                    state.reader_waits = false;
                }
            }
        }
    }

    /// The next batch to write; `None` once the reading side is done and
    /// nothing waits.
    pub fn take(&self) -> Option<Pending> {
        let mut state = self.state.lock().expect("slot lock");
        let deadline = Instant::now() + state.fill_wait;
        loop {
            let fills = |w: &Pending| w.backlog && w.batch.records < self.max_records as u64;
            let left = deadline.saturating_duration_since(Instant::now());
            match &state.waiting {
                Some(w) if fills(w) && !state.reader_waits && !state.closed && !left.is_zero() => {
                    state = self.changed.wait_timeout(state, left).expect("slot lock").0;
                }
                Some(_) => {
                    self.changed.notify_all();
                    return state.waiting.take();
                }
                None if state.closed => return None,
                None => state = self.changed.wait(state).expect("slot lock"),
            }
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

    /// Whether the sink thread is still writing: once it stopped (an
    /// error), a reader whose source is quiet must stop too, not wait for
    /// a batch to find out.
    pub fn has_writer(&self) -> bool {
        !self.state.lock().expect("slot lock").writer_gone
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread::{self, JoinHandle};

    use super::*;
    use crate::pipeline::dedupe::tests::row;
    use crate::record::SinkBatch;

    const LONG: Duration = Duration::from_secs(30);

    fn batch(records: u64, backlog: bool) -> Pending {
        let batch = SinkBatch { records, ..Default::default() };
        Pending { batch, reached: Vec::new(), change_micros: Vec::new(), backlog }
    }

    /// A slot whose last commit took `fill_wait`, within `max_wait`.
    fn slot(max_records: usize, fill_wait: Duration, max_wait: Duration) -> Arc<Slot> {
        let slot = Slot::new(max_records, max_wait, false);
        slot.commit_took(fill_wait);
        Arc::new(slot)
    }

    /// The reading side hands over `b` after `delay`.
    fn read_later(slot: &Arc<Slot>, delay: Duration, b: Pending) -> JoinHandle<()> {
        let slot = slot.clone();
        thread::spawn(move || {
            thread::sleep(delay);
            slot.put(b).ok().unwrap();
        })
    }

    /// The sink thread takes a batch of `records`, after at least `waited`
    /// (and well before `LONG`).
    fn takes(slot: &Slot, records: u64, waited: Duration) {
        let began = Instant::now();
        let b = slot.take().expect("a batch");
        let took = began.elapsed();
        assert_eq!(b.batch.records, records);
        assert!(took >= waited && took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_batch_cut_otherwise_than_by_a_size_limit_is_taken_at_once() {
        let slot = slot(1000, LONG, LONG);
        slot.put(batch(3, false)).ok().unwrap();
        takes(&slot, 3, Duration::ZERO);
    }

    #[test]
    fn a_batch_from_a_backlog_waits_until_the_transaction_is_full() {
        let slot = slot(1000, LONG, LONG);
        slot.put(batch(500, true)).ok().unwrap();
        let reader = read_later(&slot, Duration::from_millis(200), batch(500, true));
        takes(&slot, 1000, Duration::from_millis(200));
        reader.join().unwrap();
    }

    #[test]
    fn a_backlog_ends_with_a_batch_cut_otherwise() {
        let slot = slot(1000, LONG, LONG);
        slot.put(batch(500, true)).ok().unwrap();
        let reader = read_later(&slot, Duration::ZERO, batch(20, false));
        takes(&slot, 520, Duration::ZERO);
        reader.join().unwrap();
    }

    #[test]
    fn a_batch_that_does_not_fit_sends_the_waiting_one() {
        let slot = slot(1000, LONG, LONG);
        slot.put(batch(600, true)).ok().unwrap();
        let reader = read_later(&slot, Duration::ZERO, batch(600, true));
        takes(&slot, 600, Duration::ZERO);
        reader.join().unwrap();
        slot.close();
        takes(&slot, 600, Duration::ZERO);
        assert!(slot.take().is_none());
    }

    #[test]
    fn a_batch_from_a_backlog_waits_as_long_as_the_last_commit_took_within_max_wait() {
        let short = Duration::from_millis(200);
        for s in [slot(1000, short, LONG), slot(1000, LONG, short)] {
            s.put(batch(500, true)).ok().unwrap();
            takes(&s, 500, short);
        }
        // No wait before the sink has started or committed, nor after a
        // commit too fast for saving one to matter.
        let s = Slot::new(1000, LONG, false);
        s.put(batch(500, true)).ok().unwrap();
        takes(&s, 500, Duration::ZERO);
        let fast = WORTH_WAITING - Duration::from_millis(10);
        let s = slot(1000, fast, LONG);
        s.put(batch(500, true)).ok().unwrap();
        let began = Instant::now();
        s.take().unwrap();
        assert!(began.elapsed() < fast, "{:?}", began.elapsed());
    }

    #[test]
    fn the_end_of_the_reading_ends_the_wait() {
        let slot = slot(1000, LONG, LONG);
        slot.put(batch(500, true)).ok().unwrap();
        slot.close();
        takes(&slot, 500, Duration::ZERO);
    }

    #[test]
    fn without_merging_nothing_waits() {
        let slot = slot(0, LONG, LONG);
        slot.put(batch(500, true)).ok().unwrap();
        takes(&slot, 500, Duration::ZERO);
    }

    #[test]
    fn merged_batches_keep_the_latest_change_per_item_counting_the_rest() {
        let slot = slot(1000, Duration::ZERO, LONG);
        let mut superseded = 0;
        for (micros, event) in [(1, "a"), (3, "c"), (2, "b")] {
            let mut b = batch(1, false);
            b.batch.rows = vec![row("k", micros, "1", event)];
            superseded += slot.put(b).ok().unwrap();
        }
        assert_eq!(superseded, 2);
        let b = slot.take().unwrap();
        assert_eq!(b.batch.records, 3);
        let events: Vec<&str> = b.batch.rows.iter().map(|r| &*r.change.event_id).collect();
        assert_eq!(events, ["c"]);
    }
}
