//! What a run did, printed when it ends.

use std::fmt;
use std::time::Duration;

use crate::sinks::Applied;

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub pipeline: String,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    /// Rows dropped within a batch because a newer change to the item followed.
    pub superseded: u64,
    /// Records a transform chose to leave out.
    pub skipped: u64,
    /// Records a transform failed on (a trap, its memory or time, a wrong
    /// number of outcomes); they are among the dead letters.
    pub guest_faults: u64,
    /// Records and rows a replay left alone: of another table, not yet
    /// committed by a run, or older than `--from`.
    pub passed_over: u64,
    pub applied: Applied,
    pub elapsed: Duration,
}

impl Summary {
    pub fn new(pipeline: &str) -> Self {
        Summary { pipeline: pipeline.to_owned(), ..Default::default() }
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.applied;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "pipeline {} finished in {:.2} s ({} batches)", self.pipeline, secs, self.batches)?;
        let lines = [
            (
                "records read",
                self.records,
                format!(
                    "{:.0} records/s, {:.1} MB/s",
                    self.records_per_sec(),
                    self.bytes as f64 / 1e6 / secs
                ),
            ),
            ("rows upserted", a.upserted, String::new()),
            ("rows deleted", a.deleted, String::new()),
            ("stale, not applied", a.stale, "older than the stored row".into()),
            ("superseded in batch", self.superseded, "a newer change followed in the same batch".into()),
            ("skipped", self.skipped, "left out by a transform".into()),
            (
                "guest faults",
                self.guest_faults,
                if self.guest_faults > 0 {
                    "the transform failed on them; dead-lettered".into()
                } else {
                    String::new()
                },
            ),
            (
                "dead-lettered",
                a.dead_lettered,
                if a.dead_lettered > 0 { "see _sluice_dead_letters".into() } else { String::new() },
            ),
        ];
        let replayed =
            [("not replayed", self.passed_over, "another table, not committed yet, or before --from".into())];
        for (label, n, note) in lines.into_iter().chain(replayed.into_iter().filter(|l| l.1 > 0)) {
            if note.is_empty() {
                writeln!(f, "  {label:<20} {n:>10}")?;
            } else {
                writeln!(f, "  {label:<20} {n:>10}   {note}")?;
            }
        }
        Ok(())
    }
}
