//! JSON lines in S3 or a local folder (the seed's S3 output mode).
//!
//! Each batch becomes one object per sink table, under
//! `<path>/<target>/date=<UTC day>/<pipeline>-<batch>.jsonl[.gz]`, one line
//! per row in the sink tables' column layout; dead letters go to
//! `<path>/_sluice/dead_letters/`. There is no transaction, so a batch is
//! made safe to replay in three writes:
//!
//! 1. an intent object naming the keys about to be written,
//! 2. the data objects,
//! 3. the checkpoint object (one per pipeline: every stream's position and
//!    the batch number), written after the data.
//!
//! A run that dies between 1 and 3 leaves objects no checkpoint covers; the
//! next run finds the intent newer than the checkpoint and deletes them
//! before writing, then reads the same records again as the same batch
//! number. So a replay never leaves a change twice.
//!
//! This sink is not fenced (see [`capabilities`]): S3 offers no transaction
//! that could check a writer epoch and write the checkpoint at once, so only
//! one run per pipeline may write, and keeping it so is the operator's job.
//!
//! In `changes` mode a change delivered twice (Kinesis does) is written
//! once if its copies arrive within the last `WINDOW` event ids; the window
//! starts from the last committed batch's objects, so duplicates around a
//! restart are caught too.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{Read, Write};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

mod config;

pub use config::{Config, OutputMode, Section};

use super::{Applied, Asked, Capabilities, Inspector, Sink, SinkError, Status, json_line};
use crate::objects::{Access, ObjectStore};
use crate::record::{Checkpoint, SinkBatch};

/// Recent event ids remembered to drop duplicate deliveries.
const WINDOW: usize = 100_000;

pub struct S3Sink {
    out: ObjectStore,
    gzip: bool,
    mode: OutputMode,
    pipeline: String,
    state: State,
    /// Event ids written lately, oldest first, and the same as a set.
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
}

/// The checkpoint object.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    batch: u64,
    positions: BTreeMap<String, String>,
    /// The data objects of batch `batch`.
    #[serde(default)]
    objects: Vec<String>,
}

/// The intent object: what batch `batch` is about to write.
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    batch: u64,
    keys: Vec<String>,
}

impl S3Sink {
    /// Opens the sink and clears what a run that died mid-batch wrote.
    pub fn open(config: &Config, pipeline: &str) -> Result<Self> {
        let out = ObjectStore::open(&config.location)?;
        let mut sink = S3Sink {
            out,
            gzip: config.gzip,
            mode: config.mode,
            pipeline: pipeline.to_owned(),
            state: State::default(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
        };
        sink.prepare()?;
        Ok(sink)
    }

    /// Checks permissions, reads the checkpoint, removes the objects of a
    /// batch that was not committed, and seeds the duplicate window.
    fn prepare(&mut self) -> Result<()> {
        let probe = format!("_sluice/checkpoints/{}.probe", self.pipeline);
        self.out.check(&[Access::List, Access::Get, Access::Put, Access::Delete], &probe)?;
        if let Some(bytes) = self.out.get(&self.checkpoint_key())? {
            self.state = serde_json::from_slice(&bytes).context("reading the S3 sink's checkpoint object")?;
        }
        if let Some(bytes) = self.out.get(&self.intent_key())? {
            let intent: Intent =
                serde_json::from_slice(&bytes).context("reading the S3 sink's intent object")?;
            if intent.batch > self.state.batch {
                tracing::info!(
                    batch = intent.batch,
                    objects = intent.keys.len(),
                    "removing the objects of a batch that was not committed"
                );
                for key in &intent.keys {
                    self.out.delete(key)?;
                }
            }
        }
        if self.mode == OutputMode::Changes {
            self.remember_last_batch()?;
        }
        Ok(())
    }

    /// Remembers an event id; false if it was seen lately.
    fn first_sighting(&mut self, event_id: &str) -> bool {
        if event_id.is_empty() {
            return true;
        }
        if !self.recent_set.insert(event_id.to_owned()) {
            return false;
        }
        self.recent.push_back(event_id.to_owned());
        if self.recent.len() > WINDOW
            && let Some(old) = self.recent.pop_front()
        {
            self.recent_set.remove(&old);
        }
        true
    }

    /// Seeds the window with the event ids of the last committed batch.
    fn remember_last_batch(&mut self) -> Result<()> {
        for key in self.state.objects.clone() {
            let Some(bytes) = self.out.get(&key)? else { continue };
            let mut text = String::new();
            if key.ends_with(".gz") {
                flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text)?;
            } else {
                text = String::from_utf8(bytes)?;
            }
            for line in text.lines() {
                let row: serde_json::Value =
                    serde_json::from_str(line).with_context(|| format!("reading {key}"))?;
                if let Some(id) = row["event_id"].as_str() {
                    self.first_sighting(id);
                }
            }
        }
        Ok(())
    }

    fn checkpoint_key(&self) -> String {
        checkpoint_key(&self.pipeline)
    }

    fn intent_key(&self) -> String {
        format!("_sluice/checkpoints/{}.intent.json", self.pipeline)
    }

    /// `<folder>/date=<day>/<pipeline>-<batch>.jsonl[.gz]`.
    fn object_key(&self, folder: &str, day: &str, batch: u64) -> String {
        let ext = if self.gzip { "jsonl.gz" } else { "jsonl" };
        format!("{folder}/date={day}/{}-{batch:012}.{ext}", self.pipeline)
    }

    fn encode(&self, lines: &[String]) -> Result<Vec<u8>> {
        let mut text = lines.join("\n");
        text.push('\n');
        if !self.gzip {
            return Ok(text.into_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes())?;
        Ok(gz.finish()?)
    }
}

impl Sink for S3Sink {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError> {
        let positions = self.state.positions.iter();
        Ok(positions
            .map(|(stream, position)| Checkpoint {
                partition: stream.clone(),
                position: position.clone(),
                lease: None,
            })
            .collect())
    }

    fn write(&mut self, batch: &SinkBatch) -> Result<Applied, SinkError> {
        let number = self.state.batch + 1;
        let now = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
        let day = &now[..10];
        let mut objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut applied = Applied::default();
        for row in &batch.rows {
            if self.mode == OutputMode::Changes && !self.first_sighting(&row.change.event_id) {
                continue;
            }
            let extras: Vec<String> = row.change.extra.iter().map(|c| c.name.clone()).collect();
            let raw = row.raw.kept().map(String::from_utf8_lossy);
            objects.entry(self.object_key(&row.target, day, number)).or_default().push(json_line(
                row,
                &extras,
                raw.as_deref(),
            ));
            let counts = applied.target(&row.target);
            if row.change.operation.is_delete() {
                counts.deleted += 1;
            } else {
                counts.upserted += 1;
            }
        }
        for dead in &batch.dead_letters {
            let mut line = serde_json::json!({
                "pipeline": self.pipeline, "table_name": dead.table, "origin": dead.origin,
                "reason": dead.reason,
            });
            // The record exactly: as text when it is UTF-8, else as base64.
            match std::str::from_utf8(&dead.raw) {
                Ok(text) => line["raw_payload"] = text.into(),
                Err(_) => {
                    use base64::Engine as _;
                    line["raw_base64"] = base64::engine::general_purpose::STANDARD.encode(&dead.raw).into();
                }
            }
            objects
                .entry(self.object_key("_sluice/dead_letters", day, number))
                .or_default()
                .push(line.to_string());
            applied.dead_lettered += 1;
        }

        let intent = Intent { batch: number, keys: objects.keys().cloned().collect() };
        self.out.put(&self.intent_key(), serde_json::to_vec(&intent).expect("an intent serialises"))?;
        for (key, lines) in &objects {
            let bytes = self.encode(lines)?;
            self.out.put(key, bytes)?;
        }
        fail::fail_point!("sink::before_commit", |_| std::process::abort());
        let data = objects.keys().filter(|k| !k.starts_with("_sluice/")).cloned().collect();
        let mut state = State { batch: number, positions: self.state.positions.clone(), objects: data };
        for c in &batch.checkpoints {
            state.positions.insert(c.partition.clone(), c.position.clone());
        }
        self.out
            .put(&self.checkpoint_key(), serde_json::to_vec_pretty(&state).expect("a state serialises"))?;
        self.state = state;
        fail::fail_point!("sink::after_commit", |_| std::process::abort());
        Ok(applied)
    }
}

/// `sluice status` on S3: reads the checkpoint object, nothing else (in
/// particular, never the clean-up a run does before writing).
pub struct Inspect {
    out: ObjectStore,
}

impl Inspect {
    pub fn open(config: &Config) -> Result<Self> {
        Ok(Inspect { out: ObjectStore::open(&config.location)? })
    }
}

impl Inspector for Inspect {
    fn status(&mut self, asked: &Asked) -> Result<Status> {
        let pipeline = asked.pipeline;
        let state: State = match self.out.get(&checkpoint_key(pipeline))? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).context("reading the S3 sink's checkpoint object")?
            }
            None => State::default(),
        };
        let committed = format!("batch {}", state.batch);
        Ok(Status {
            checkpoints: state.positions.into_iter().map(|(s, p)| (s, p, committed.clone())).collect(),
            ..Default::default()
        })
    }
}

fn checkpoint_key(pipeline: &str) -> String {
    format!("_sluice/checkpoints/{pipeline}.json")
}

/// Unfenced and without transactions; in `changes` mode it keeps every
/// distinct change of a batch, which is this sink's history-keeping policy.
pub fn capabilities(config: &Config) -> Capabilities {
    Capabilities {
        transactional: false,
        fenced: false,
        keeps_every_change: config.mode == OutputMode::Changes,
        replaces_rows: false,
    }
}
