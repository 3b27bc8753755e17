//! A file of stream records, one per line (the `data` of Kinesis records).
//!
//! The position is the byte offset after the last line read plus its line
//! number, so a resumed run seeks straight there. Blank lines are skipped but
//! still counted, so line numbers match what an editor shows.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

mod config;

pub use config::{Config, Section};

use super::{ChangeRecords, Source, blank_after_trimming};
use crate::record::{Batch, BatchLimits, Checkpoint};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Position {
    offset: u64,
    line: u64,
}

/// The last line a committed position covers.
pub(super) fn last_line(position: &str) -> Option<String> {
    serde_json::from_str::<Position>(position).ok().map(|p| p.line.to_string())
}

/// The bytes of `path` after a committed position.
pub(super) fn unread_bytes(path: &Path, position: &str) -> Result<u64> {
    let at: Position = serde_json::from_str(position).context("reading the position")?;
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    Ok(len.saturating_sub(at.offset))
}

pub struct FileSource {
    reader: BufReader<File>,
    partition: Arc<str>,
    at: Position,
    batches: u64,
    changes: ChangeRecords,
}

impl FileSource {
    /// Opens `path`, named `partition` in checkpoints and dead letters, after
    /// the `resume` position if there is one.
    pub fn open(path: &Path, partition: &str, resume: Option<&Checkpoint>) -> Result<Self> {
        let mut file =
            File::open(path).with_context(|| format!("opening the source file {}", path.display()))?;
        let at = match resume {
            Some(c) => serde_json::from_str::<Position>(&c.position)
                .with_context(|| format!("reading the checkpoint of {partition}: {:?}", c.position))?,
            None => Position { offset: 0, line: 0 },
        };
        let len = file.metadata()?.len();
        if at.offset > len {
            bail!(
                "{partition} is {len} bytes long, but the checkpoint says {} bytes were already read: \
                 the file was replaced or truncated",
                at.offset
            );
        }
        file.seek(SeekFrom::Start(at.offset))?;
        if at.offset > 0 {
            tracing::info!(partition, line = at.line, "resuming after the committed checkpoint");
        }
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            partition: partition.into(),
            at,
            batches: 0,
            changes: ChangeRecords::default(),
        })
    }
}

impl Source for FileSource {
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>> {
        let started = Instant::now();
        let mut batch = Batch::default();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", self.partition))?;
            if n == 0 {
                break;
            }
            self.at.offset += n as u64;
            self.at.line += 1;
            if blank_after_trimming(&mut line) {
                continue;
            }
            batch.bytes += line.len();
            batch.records.push(self.changes.record(line, self.partition.clone(), self.at.line.to_string()));
            if batch.records.len() >= limits.max_records
                || batch.bytes >= limits.max_bytes
                || started.elapsed() >= limits.max_wait
            {
                break;
            }
        }
        if batch.records.is_empty() {
            return Ok(None);
        }
        self.batches += 1;
        batch.number = self.batches;
        batch.checkpoints.push(Checkpoint {
            partition: self.partition.to_string(),
            position: serde_json::to_string(&self.at).expect("a position serialises"),
            lease: None,
        });
        Ok(Some(batch))
    }
}
