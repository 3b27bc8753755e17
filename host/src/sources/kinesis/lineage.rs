//! Which shards may be read now.
//!
//! After a split or a merge, the same items have changes in a parent shard
//! (older) and its children (newer). A child is read only once every parent
//! has been read to its end *and that end is committed*, so no change of a
//! child is ever applied before the last changes of its parents. Closed
//! shards are read to their end, never dropped.

use std::collections::BTreeMap;

/// A shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shard {
    pub id: String,
    /// `ParentShardId` and `AdjacentParentShardId` (after a merge).
    pub parents: Vec<String>,
    /// Whether the shard has an ending sequence number (it was split or merged).
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Listed, but a parent is not done yet.
    Waiting,
    /// Handed to a reader.
    Reading,
    /// Read to its end, and that end committed.
    Done,
}

#[derive(Debug, Default)]
pub(super) struct Lineage {
    shards: BTreeMap<String, (Shard, Progress)>,
    /// Shards known to be done before they were listed (from checkpoints).
    done: Vec<String>,
}

impl Lineage {
    /// `done`: shards whose end is already committed.
    pub fn new(done: impl IntoIterator<Item = String>) -> Self {
        Lineage { shards: BTreeMap::new(), done: done.into_iter().collect() }
    }

    /// Learns the current shard list; new shards start waiting. Shards that
    /// no longer appear (trimmed after the retention period) are forgotten,
    /// and count as done for their children.
    pub fn update(&mut self, listed: Vec<Shard>) {
        let ids: Vec<String> = listed.iter().map(|s| s.id.clone()).collect();
        for shard in listed {
            let progress = if self.done.contains(&shard.id) { Progress::Done } else { Progress::Waiting };
            self.shards.entry(shard.id.clone()).or_insert((shard, progress));
        }
        self.shards.retain(|id, (_, progress)| ids.contains(id) || *progress == Progress::Reading);
    }

    /// Marks a shard done without reading it (closed shards when starting at `latest`).
    pub fn skip(&mut self, id: &str) {
        if let Some((_, progress)) = self.shards.get_mut(id) {
            *progress = Progress::Done;
        }
        self.done.push(id.to_owned());
    }

    /// The shards that may be read now; they are marked as being read.
    pub fn ready(&mut self) -> Vec<Shard> {
        let finished = |id: &String, shards: &BTreeMap<String, (Shard, Progress)>| {
            shards.get(id).is_none_or(|(_, p)| *p == Progress::Done)
        };
        let ready: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, (shard, progress))| {
                *progress == Progress::Waiting && shard.parents.iter().all(|p| finished(p, &self.shards))
            })
            .map(|(id, _)| id.clone())
            .collect();
        ready
            .into_iter()
            .map(|id| {
                let entry = self.shards.get_mut(&id).expect("listed");
                entry.1 = Progress::Reading;
                entry.0.clone()
            })
            .collect()
    }

    /// The end of a shard is committed: its children may follow.
    pub fn end_committed(&mut self, id: &str) {
        self.skip(id);
    }

    /// Whether any listed shard still waits for a parent: until none does,
    /// the stream has not been read to its tip.
    pub fn waiting(&self) -> bool {
        self.shards.values().any(|(_, p)| *p == Progress::Waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> Shard {
        Shard { id: id.into(), parents: parents.iter().map(|p| p.to_string()).collect(), closed }
    }

    fn ids(shards: Vec<Shard>) -> Vec<String> {
        shards.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn children_wait_until_every_parent_end_is_committed() {
        let mut l = Lineage::new([]);
        // 0 was split into 1 and 2; then 1 and 2 were merged into 3.
        l.update(vec![
            shard("0", &[], true),
            shard("1", &["0"], true),
            shard("2", &["0"], true),
            shard("3", &["1", "2"], false),
            shard("4", &[], false),
        ]);
        assert_eq!(ids(l.ready()), ["0", "4"]);
        assert!(l.ready().is_empty(), "nothing else until 0's end is committed");
        assert!(l.waiting());
        l.end_committed("0");
        assert_eq!(ids(l.ready()), ["1", "2"]);
        l.end_committed("1");
        assert!(l.ready().is_empty(), "3 also needs 2");
        l.end_committed("2");
        assert_eq!(ids(l.ready()), ["3"]);
        assert!(!l.waiting());
    }

    #[test]
    fn committed_ends_from_checkpoints_and_trimmed_parents_count_as_done() {
        let mut l = Lineage::new(["1".to_owned()]);
        // 0 has aged out of the stream; 1 ended in an earlier run.
        l.update(vec![shard("1", &["0"], true), shard("2", &["0"], false), shard("3", &["1"], false)]);
        assert_eq!(ids(l.ready()), ["2", "3"]);
    }

    #[test]
    fn a_shard_is_handed_out_once() {
        let mut l = Lineage::new([]);
        l.update(vec![shard("0", &[], false)]);
        assert_eq!(ids(l.ready()), ["0"]);
        l.update(vec![shard("0", &[], false)]);
        assert!(l.ready().is_empty());
    }
}
