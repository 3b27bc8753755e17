//! One data file, streamed: stored bytes (hashed with MD5 on the way) →
//! gzip decoder → lines → chunks of records on a bounded channel. Nothing
//! holds a whole file; a chunk is at most `CHUNK_RECORDS` lines.
//!
//! The file's end is reported only after its MD5 and item count match the
//! export's manifest, so a corrupt or truncated file never counts as done.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use anyhow::{Context, Result, bail};
use base64::Engine;
use md5::{Digest, Md5};

use super::layout::DataFile;
use crate::objects::ObjectStore;
use crate::record::{ExportInfo, Format, SourceRecord};
use crate::sources::blank_after_trimming;

/// Lines per chunk handed to the source.
const CHUNK_RECORDS: usize = 500;
/// Bytes per chunk handed to the source.
const CHUNK_BYTES: usize = 1 << 20;

/// What reader threads hand to the source.
pub enum Event {
    /// Records of `file`; `last_line` is the line number of the last one.
    Lines {
        file: usize,
        last_line: u64,
        records: Vec<SourceRecord>,
        /// The file's lease counter, for a coordinated worker.
        lease: Option<i64>,
    },
    /// `file` was read to its end and verified; it had `lines` lines.
    Done {
        file: usize,
        lines: u64,
        lease: Option<i64>,
    },
    Failed(String),
}

#[derive(Clone)]
pub struct Job {
    pub index: usize,
    pub file: DataFile,
    /// The file's partition name in checkpoints and dead letters.
    pub partition: Arc<str>,
    /// Lines already committed, skipped (but still hashed and counted).
    pub skip_lines: u64,
    /// The DynamoDB table the export is of.
    pub table: Arc<str>,
    pub format: Arc<ExportInfo>,
    /// The file's lease counter, for a coordinated worker.
    pub lease: Option<i64>,
    /// Set when the file's lease moved (the reader stops), and by the
    /// reader when it is done.
    pub stop: Arc<AtomicBool>,
}

/// Reads one file, sending its records; false if the source is gone.
pub fn read(store: &ObjectStore, job: &Job, events: &SyncSender<Event>) -> bool {
    match read_file(store, job, events) {
        Ok(Some(lines)) => {
            job.stop.store(true, Ordering::Relaxed);
            events.send(Event::Done { file: job.index, lines, lease: job.lease }).is_ok()
        }
        // Stopped because the lease moved: the next file may be read.
        Ok(None) => job.stop.load(Ordering::Relaxed),
        Err(e) => {
            let _ =
                events.send(Event::Failed(format!("{}: {e:#}", store.describe(&job.file.data_file_s3_key))));
            false
        }
    }
}

/// The number of lines, or `None` if the source went away or the lease moved.
fn read_file(store: &ObjectStore, job: &Job, events: &SyncSender<Event>) -> Result<Option<u64>> {
    let rel = &job.file.data_file_s3_key;
    let stored = Hashing { inner: store.reader(rel, job.file.etag.as_deref())?, md5: Md5::new(), bytes: 0 };
    let mut stored = BufReader::with_capacity(256 << 10, stored);
    // An empty object is an empty file; gzip needs at least a header.
    let empty = stored.fill_buf().context("reading")?.is_empty();
    let mut lines: Box<dyn BufRead> = if empty {
        Box::new(std::io::empty())
    } else if rel.ends_with(".gz") {
        Box::new(BufReader::with_capacity(256 << 10, flate2::bufread::MultiGzDecoder::new(&mut stored)))
    } else {
        Box::new(&mut stored)
    };

    let (mut number, mut items) = (0u64, 0u64);
    let mut chunk: Vec<SourceRecord> = Vec::with_capacity(CHUNK_RECORDS);
    let mut chunk_bytes = 0;
    loop {
        let mut line = Vec::new();
        let read = lines.read_until(b'\n', &mut line).with_context(|| {
            format!("decompressing after line {number} (a truncated or corrupt gzip file?)")
        })?;
        if read == 0 {
            break;
        }
        number += 1;
        if blank_after_trimming(&mut line) {
            continue;
        }
        items += 1;
        if number <= job.skip_lines {
            continue;
        }
        chunk_bytes += line.len();
        chunk.push(SourceRecord {
            payload: line,
            table: Ok(job.table.clone()),
            partition: job.partition.clone(),
            sequence: number.to_string(),
            format: Format::ExportLine(job.format.clone()),
        });
        if chunk.len() >= CHUNK_RECORDS || chunk_bytes >= CHUNK_BYTES {
            let records = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
            chunk_bytes = 0;
            if job.stop.load(Ordering::Relaxed) || send(events, job, number, records).is_err() {
                return Ok(None);
            }
        }
    }
    drop(lines);
    // Whatever follows the gzip data is part of the object, and of its MD5.
    std::io::copy(&mut stored, &mut std::io::sink()).context("reading")?;

    if let Some(want) = job.file.item_count
        && want != items
    {
        bail!("the export's manifest says {want} items, the file has {items}");
    }
    let hashing = stored.into_inner();
    if let Some(want) = &job.file.md5_checksum {
        let have = base64::engine::general_purpose::STANDARD.encode(hashing.md5.finalize());
        if *want != have {
            bail!(
                "MD5 is {have}, but the export's manifest says {want} ({} bytes read): the file is corrupt",
                hashing.bytes
            );
        }
    }
    if job.stop.load(Ordering::Relaxed) || (!chunk.is_empty() && send(events, job, number, chunk).is_err()) {
        return Ok(None);
    }
    Ok(Some(number))
}

fn send(events: &SyncSender<Event>, job: &Job, last_line: u64, records: Vec<SourceRecord>) -> Result<(), ()> {
    let lines = Event::Lines { file: job.index, last_line, records, lease: job.lease };
    events.send(lines).map_err(drop)
}

/// Hashes what passes through.
struct Hashing {
    inner: Box<dyn Read + Send>,
    md5: Md5,
    bytes: u64,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
