//! Which shards may be read now.
//!
//! After a split or a merge, the same items have changes in a parent shard
//! (older) and its children (newer). A child is read only once every parent
//! has been read to its end *and that end is committed*, so no change of a
//! child is ever applied before the last changes of its parents. Closed
//! shards are read to their end, never dropped.
//!
//! A child of a shard sluice read starts at its oldest record, whatever the
//! manifest's `start`: everything in it was written after its parents closed,
//! so starting it anywhere later would skip changes (the Kinesis Client
//! Library does the same). `start` applies to the shards a run finds without
//! a parent it read.

use std::collections::{BTreeMap, HashSet};

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
    /// Read to its end and that end committed, or passed over at start.
    Done,
}

/// A shard that may be read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ready {
    pub shard: Shard,
    /// A parent was read by sluice: the shard must be read from its oldest record.
    pub after_parent: bool,
}

#[derive(Debug, Default)]
pub(super) struct Lineage {
    shards: BTreeMap<String, (Shard, Progress)>,
    /// Shards whose end is committed, in this run or an earlier one.
    ended: HashSet<String>,
    /// Shards passed over without reading (closed when a run starts at `latest`).
    skipped: HashSet<String>,
}

impl Lineage {
    /// `ended`: shards whose end is already committed.
    pub fn new(ended: impl IntoIterator<Item = String>) -> Self {
        Lineage { ended: ended.into_iter().collect(), ..Default::default() }
    }

    /// Learns the current shard list; new shards start waiting. Shards that
    /// no longer appear (trimmed after the retention period) are forgotten,
    /// and count as done for their children.
    pub fn update(&mut self, listed: Vec<Shard>) {
        let ids: HashSet<String> = listed.iter().map(|s| s.id.clone()).collect();
        for shard in listed {
            let done = self.ended.contains(&shard.id) || self.skipped.contains(&shard.id);
            let progress = if done { Progress::Done } else { Progress::Waiting };
            self.shards.entry(shard.id.clone()).or_insert((shard, progress));
        }
        self.shards.retain(|id, (_, progress)| ids.contains(id) || *progress == Progress::Reading);
    }

    /// Passes over a shard that waits to be read; one already being read is
    /// left alone (it may have been split since its reader started).
    pub fn skip(&mut self, id: &str) {
        if let Some((_, progress)) = self.shards.get_mut(id)
            && *progress == Progress::Waiting
        {
            *progress = Progress::Done;
            self.skipped.insert(id.to_owned());
        }
    }

    /// The shards that may be read now; they are marked as being read.
    pub fn ready(&mut self) -> Vec<Ready> {
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
                let after_parent = entry.0.parents.iter().any(|p| self.ended.contains(p));
                Ready { shard: entry.0.clone(), after_parent }
            })
            .collect()
    }

    /// The end of a shard is committed: its children may follow.
    pub fn end_committed(&mut self, id: &str) {
        if let Some((_, progress)) = self.shards.get_mut(id) {
            *progress = Progress::Done;
        }
        self.ended.insert(id.to_owned());
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

    fn ids(ready: Vec<Ready>) -> Vec<String> {
        ready.into_iter().map(|r| r.shard.id).collect()
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

    #[test]
    fn children_of_a_shard_read_here_start_at_the_oldest_record() {
        let mut l = Lineage::new(["9".to_owned()]);
        // 0 is skipped at start (closed, starting at latest); 9 ended in an earlier run.
        l.update(vec![
            shard("0", &[], true),
            shard("1", &["0"], false),
            shard("2", &[], false),
            shard("3", &["9"], false),
        ]);
        l.skip("0");
        let ready = l.ready();
        let after: Vec<(String, bool)> = ready.into_iter().map(|r| (r.shard.id, r.after_parent)).collect();
        assert_eq!(after, [("1".into(), false), ("2".into(), false), ("3".into(), true)]);
        // 2 is split while being read: skipping it now changes nothing.
        l.update(vec![shard("2", &[], true), shard("4", &["2"], false), shard("5", &["2"], false)]);
        l.skip("2");
        assert!(l.ready().is_empty(), "2 is still being read");
        l.end_committed("2");
        let ready = l.ready();
        assert!(ready.iter().all(|r| r.after_parent), "{ready:?}");
        assert_eq!(ids(ready), ["4", "5"]);
    }
}
