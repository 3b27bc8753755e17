//! Sources read records and cut them into batches, each with the positions
//! reached after it. A source knows nothing of guests or sinks: it is handed
//! the checkpoints the sink committed and resumes right after them, and is
//! told when later ones are committed.

mod export;
mod file;
mod handover;
mod kinesis;

use anyhow::Result;

pub use export::ExportSource;
pub use file::FileSource;
pub use handover::ExportThenStream;
pub use kinesis::KinesisSource;

use crate::manifest::{Plan, SourcePlan};
use crate::record::{Batch, BatchLimits, Checkpoint};

pub trait Source: Send {
    /// The next batch, cut at the first limit reached. An empty batch (no
    /// records, no checkpoints) means nothing arrived in `max_wait`; `None`
    /// means the source is done: a file read to its end, or a stream read
    /// to its tip when asked to stop there.
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>>;

    /// The sink committed these checkpoints.
    fn committed(&mut self, _checkpoints: &[Checkpoint]) {}
}

/// Opens the source a plan names, resuming from committed checkpoints.
/// `exit_when_caught_up` makes an endless source (a stream) end once it
/// has read everything there is.
pub fn open(plan: &Plan, committed: &[Checkpoint], exit_when_caught_up: bool) -> Result<Box<dyn Source>> {
    match &plan.source {
        SourcePlan::File { path, written } => {
            let resume = committed.iter().find(|c| c.stream == *written);
            Ok(Box::new(FileSource::open(path, written, resume)?))
        }
        SourcePlan::Kinesis(k) => Ok(Box::new(KinesisSource::open(k, committed, exit_when_caught_up)?)),
        SourcePlan::Export(e) => {
            let export = ExportSource::open(plan, e, committed)?;
            Ok(match &e.then {
                Some(then) => {
                    Box::new(ExportThenStream::new(export, then.clone(), committed, exit_when_caught_up))
                }
                None => Box::new(export),
            })
        }
    }
}
