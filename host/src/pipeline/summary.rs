//! What a run did, printed when it ends: as text for people, or as JSON
//! (`--summary json`) for the orchestrator that started it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::sinks::Applied;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub pipeline: String,
    /// Batches read and transformed.
    pub batches: u64,
    /// Transactions the sink committed: fewer than the batches when batches
    /// read while the sink was busy were merged (`max_coalesce`).
    pub commits: u64,
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
    /// What the sink did, per sink table.
    pub applied: Applied,
    /// Per DynamoDB table.
    pub tables: BTreeMap<String, TableSummary>,
    #[serde(rename = "sink_seconds", serialize_with = "seconds")]
    pub in_sink: Duration,
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

/// What a run did with one DynamoDB table's records.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TableSummary {
    pub read: u64,
    pub skipped: u64,
    pub guest_faults: u64,
    pub dead_lettered: u64,
    #[serde(rename = "transform_seconds", serialize_with = "seconds")]
    pub in_transform: Duration,
}

impl TableSummary {
    pub fn add(&mut self, other: &TableSummary) {
        self.read += other.read;
        self.skipped += other.skipped;
        self.guest_faults += other.guest_faults;
        self.dead_lettered += other.dead_lettered;
        self.in_transform += other.in_transform;
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e3).round() / 1e3)
}

impl Summary {
    pub fn new(pipeline: &str) -> Self {
        Summary { pipeline: pipeline.to_owned(), ..Default::default() }
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a summary serialises")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.applied.rows();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "pipeline {} finished in {:.2} s ({} batches, {} commits)",
            self.pipeline, secs, self.batches, self.commits
        )?;
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
            ("rows upserted", rows.upserted, String::new()),
            ("rows deleted", rows.deleted, String::new()),
            ("stale, not applied", rows.stale, "older than the stored row".into()),
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
                self.applied.dead_lettered,
                if self.applied.dead_lettered > 0 {
                    "see _sluice_dead_letters".into()
                } else {
                    String::new()
                },
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
        if !self.tables.is_empty() {
            writeln!(
                f,
                "  {:<20} {:>10} {:>10} {:>10} {:>12}",
                "by table", "read", "faults", "dead", "transform"
            )?;
            for (name, t) in &self.tables {
                let took = format!("{:.2} s", t.in_transform.as_secs_f64());
                writeln!(
                    f,
                    "    {name:<18} {:>10} {:>10} {:>10} {took:>12}",
                    t.read, t.guest_faults, t.dead_lettered
                )?;
            }
        }
        if !self.applied.targets.is_empty() {
            writeln!(f, "  {:<20} {:>10} {:>10} {:>10}", "by sink table", "upserted", "deleted", "stale")?;
            for (name, r) in &self.applied.targets {
                writeln!(f, "    {name:<18} {:>10} {:>10} {:>10}", r.upserted, r.deleted, r.stale)?;
            }
            writeln!(f, "  {:<20} {:>10.2} s", "time in the sink", self.in_sink.as_secs_f64())?;
        }
        Ok(())
    }
}
