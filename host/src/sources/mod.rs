//! Sources read records and cut them into batches, each with the positions
//! reached after it. A source knows nothing of guests or sinks: it is handed
//! the checkpoints the sink committed and resumes right after them.

mod file;

use anyhow::Result;

pub use file::FileSource;

use crate::manifest::SourcePlan;
use crate::record::{Batch, BatchLimits, Checkpoint};

pub trait Source: Send {
    /// The next batch, cut at the first limit reached; `None` once a bounded
    /// source has nothing more.
    fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Batch>>;
}

/// Opens the source a plan names, resuming from committed checkpoints.
pub fn open(plan: &SourcePlan, committed: &[Checkpoint]) -> Result<Box<dyn Source>> {
    match plan {
        SourcePlan::File { path, written } => {
            let resume = committed.iter().find(|c| c.stream == *written);
            Ok(Box::new(FileSource::open(path, written, resume)?))
        }
    }
}
