//! Which transform made a table's rows, committed with the checkpoints (a
//! partition `transform:<table>` per DynamoDB table), so that the first run
//! after a swap says which tables' stored rows an older transform made, and
//! `sluice replay` can rewrite them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::guest::{TableSettings, TransformRef};
use crate::record::{Checkpoint, SinkBatch, is_table_name};

/// Checkpoints whose partition starts so are stamps, not source positions.
const PREFIX: &str = "transform:";

/// A table's transform: the component, and a digest of its bytes and of
/// what `configure` is given (keys and settings), since either changes rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Stamp {
    transform: String,
    sha256: String,
}

impl Stamp {
    pub fn new(transform: &TransformRef, component_sha256: &str, settings: &TableSettings) -> Self {
        let mut sha = Sha256::new();
        sha.update(component_sha256.as_bytes());
        for part in settings.keys.iter().chain(settings.settings.iter().flat_map(|(k, v)| [k, v])) {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            sha.update((part.len() as u64).to_le_bytes());
            sha.update(part.as_bytes());
        }
        let sha256 = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Stamp { transform: transform.to_string(), sha256 }
    }
}

/// The stamps a run found committed, and those it will commit.
pub(super) struct Transforms {
    stored: HashMap<String, Stamp>,
    /// Tables whose stamp this run compared.
    seen: HashSet<String>,
    /// Stamps to commit with the next batch written.
    pending: Vec<Checkpoint>,
    /// Rows are being rewritten (`sluice replay`), not only written.
    replay: bool,
    /// The manifest's path, for the command the warning suggests.
    manifest: String,
}

/// The DynamoDB table whose transform stamp a checkpoint's partition holds,
/// if it holds one.
pub fn stamped_table(partition: &str) -> Option<&str> {
    partition.strip_prefix(PREFIX)
}

/// Parts committed checkpoints into the source's positions and the stamps.
pub(super) fn split(
    committed: Vec<Checkpoint>,
    replay: bool,
    manifest: &Path,
) -> (Vec<Checkpoint>, Transforms) {
    let mut stored = HashMap::new();
    let mut positions = Vec::new();
    for c in committed {
        match stamped_table(&c.partition) {
            Some(table) => match serde_json::from_str::<Stamp>(&c.position) {
                Ok(stamp) => {
                    stored.insert(table.to_owned(), stamp);
                }
                Err(e) => tracing::warn!(table, "ignoring an unreadable transform stamp: {e}"),
            },
            None => positions.push(c),
        }
    }
    let transforms = Transforms {
        stored,
        seen: HashSet::new(),
        pending: Vec::new(),
        replay,
        manifest: manifest.display().to_string(),
    };
    (positions, transforms)
}

impl Transforms {
    /// Compares the transform of `table`'s guest with the one stored, once
    /// per run, and queues its stamp when it is new. A run warns of a
    /// change, since the rows stored before keep what the old one made.
    pub fn started(&mut self, table: &str, stamp: &Stamp) {
        if !is_table_name(table) || !self.seen.insert(table.to_owned()) {
            return;
        }
        match self.stored.get(table) {
            Some(old) if old == stamp => return,
            Some(old) if self.replay => {
                tracing::info!(
                    table,
                    before = old.transform,
                    now = stamp.transform,
                    "rewriting what another transform made"
                )
            }
            Some(old) => tracing::warn!(
                table,
                before = old.transform,
                now = stamp.transform,
                "the table's transform (its component, keys or settings) changed since rows were last committed; \
                 rows stored before keep what the old one made: `sluice replay {} --table {table}` \
                 rewrites them",
                self.manifest
            ),
            None => {}
        }
        let position = serde_json::to_string(stamp).expect("stamps serialise");
        self.pending.push(Checkpoint { partition: format!("{PREFIX}{table}"), position, lease: None });
    }

    /// Adds the queued stamps to a batch about to be written.
    pub fn commit_with(&mut self, batch: &mut SinkBatch) {
        batch.checkpoints.append(&mut self.pending);
    }
}
