//! An export, then the stream that continues it: the backfill-and-stream
//! set-up in one run. Shards without a checkpoint are read from the export's
//! `exportTime` minus a margin; what the overlap reads again is older than,
//! or the same as, what the export loaded, and the ordering guard keeps the
//! newer. The result is the table as if it had been streamed from the start.
//!
//! Workers sharing the pipeline ([coordination]) lease the data files first
//! and the shards only once every file is loaded, so the hand-over happens
//! once: a shard's first holder starts it there, later ones where it stopped.

use anyhow::Result;

use super::export::{ExportSource, HandOver};
use super::kinesis::{KinesisSource, Start};
use super::{Leased, Source};
use crate::record::{Batch, BatchLimits, Checkpoint};

pub struct ExportThenStream {
    export: Option<ExportSource>,
    stream: Option<KinesisSource>,
    then: HandOver,
    /// Checkpoints committed before this run: the stream's, after a restart.
    committed: Vec<Checkpoint>,
    exit_when_caught_up: bool,
    leased: Option<Leased>,
}

impl ExportThenStream {
    pub fn new(
        export: ExportSource,
        then: HandOver,
        committed: &[Checkpoint],
        exit_when_caught_up: bool,
        leased: Option<Leased>,
    ) -> Self {
        ExportThenStream {
            export: Some(export),
            stream: None,
            then,
            committed: committed.to_vec(),
            exit_when_caught_up,
            leased,
        }
    }
}

impl Source for ExportThenStream {
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>> {
        if let Some(export) = &mut self.export {
            if let Some(batch) = export.next_batch(limits)? {
                return Ok(Some(batch));
            }
            let from = export.as_of - self.then.margin;
            let mut stream = self.then.kinesis.clone();
            stream.start = Start::AtTimestamp(from);
            tracing::info!(
                stream = stream.stream_arn,
                "export loaded; shards without a checkpoint are read from {} (exportTime - {})",
                humantime::format_rfc3339_millis(from),
                humantime::format_duration(self.then.margin)
            );
            self.stream = Some(KinesisSource::open(
                &stream,
                &self.committed,
                self.exit_when_caught_up,
                self.leased.take(),
            )?);
            self.export = None;
        }
        self.stream.as_mut().expect("opened once the export is loaded").next_batch(limits)
    }

    fn committed(&mut self, checkpoints: &[Checkpoint]) {
        if let Some(export) = &mut self.export {
            export.committed(checkpoints);
        }
        if let Some(stream) = &mut self.stream {
            stream.committed(checkpoints);
        }
    }
}
