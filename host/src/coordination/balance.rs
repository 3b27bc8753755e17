//! Which leases a worker takes this round, by the Kinesis Client Library's
//! rules, kept pure so the policy is tested without a table. Each worker
//! aims at an even share of the open leases: it takes free and expired ones
//! first, and steals only one at a time, only from a worker above the
//! share, so two workers never trade a lease back and forth.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use super::leases::Lease;

/// How a worker sees the table this round.
pub struct Round<'a> {
    pub me: &'a str,
    pub leases: &'a [Lease],
    /// Leases whose holder has not renewed within the lease duration, as
    /// this worker observed (keys).
    pub expired: &'a HashSet<String>,
    /// `max_leases_per_worker`.
    pub max_leases: Option<usize>,
    /// Leases read before all others: those whose key starts with this (an
    /// export's data files, before the stream that continues it). While one
    /// of them is open, no other lease is taken.
    pub first: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Take<'a> {
    /// Nobody holds it, or its holder stopped renewing.
    Free(&'a Lease),
    /// Held by the most loaded worker, which is above its share.
    Steal(&'a Lease),
}

/// The leases to take now: free or expired ones up to this worker's share,
/// unowned first, by key; failing those, one stolen from the most loaded
/// worker if it holds more than the share. A lease whose parent shard has
/// a lease not yet ended is never taken, so a key's changes are read in
/// order across a split or merge; nor is any lease while one of the
/// `first` is open, so an export is loaded before its stream is read.
pub fn choose<'a>(round: &Round<'a>) -> Vec<Take<'a>> {
    let ended: HashSet<&str> = round.leases.iter().filter(|l| l.ended()).map(|l| l.key.as_str()).collect();
    let known: HashSet<&str> = round.leases.iter().map(|l| l.key.as_str()).collect();
    // A parent without a lease was read before the table (or trimmed away).
    let available = |lease: &Lease| {
        lease.parents.iter().all(|p| ended.contains(p.as_str()) || !known.contains(p.as_str()))
    };
    // Its owner, unless the owner stopped renewing it.
    let holder = |lease: &'a Lease| lease.owner.as_deref().filter(|_| !round.expired.contains(&lease.key));
    let first = |lease: &Lease| round.first.is_some_and(|prefix| lease.key.starts_with(prefix));
    let first_open = round.leases.iter().any(|l| !l.ended() && first(l));
    // The leases shared now: the first ones while any is open, else all.
    let open: Vec<&'a Lease> =
        round.leases.iter().filter(|l| !l.ended() && (first(l) || !first_open)).collect();

    // Each worker's count, this one's included even when it holds nothing;
    // ordered by name so ties break the same way on every worker.
    let mut held: BTreeMap<&str, usize> = BTreeMap::from([(round.me, 0)]);
    for &lease in &open {
        if let Some(owner) = holder(lease) {
            *held.entry(owner).or_default() += 1;
        }
    }
    let mut target = open.len().div_ceil(held.len());
    if let Some(max) = round.max_leases {
        target = target.min(max);
    }
    let mine = held[round.me];
    if mine >= target {
        return Vec::new();
    }

    let mut free: Vec<&'a Lease> =
        open.iter().copied().filter(|&l| holder(l).is_none() && available(l)).collect();
    if !free.is_empty() {
        free.sort_by_key(|l| (l.owner.is_some(), l.key.as_str()));
        return free.into_iter().take(target - mine).map(Take::Free).collect();
    }

    let Some((&busiest, &most)) = held.iter().max_by_key(|&(name, count)| (*count, Reverse(*name))) else {
        return Vec::new();
    };
    if most <= target {
        return Vec::new();
    }
    open.iter()
        .copied()
        .filter(|&l| holder(l) == Some(busiest) && available(l))
        .min_by_key(|l| l.key.as_str())
        .map(Take::Steal)
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::leases::SHARD_END;

    fn lease(key: &str, owner: Option<&str>) -> Lease {
        Lease {
            key: key.into(),
            owner: owner.map(Into::into),
            counter: 1,
            parents: Vec::new(),
            checkpoint: "TRIM_HORIZON".into(),
            owner_switches: 0,
        }
    }

    fn child(key: &str, parents: &[&str]) -> Lease {
        Lease { parents: parents.iter().map(|p| p.to_string()).collect(), ..lease(key, None) }
    }

    fn ended(key: &str, owner: Option<&str>) -> Lease {
        Lease { checkpoint: SHARD_END.into(), ..lease(key, owner) }
    }

    /// `count` leases s0, s1, …, owned as `owners` says (by index).
    fn table(count: usize, owners: &[Option<&str>]) -> Vec<Lease> {
        (0..count).map(|i| lease(&format!("s{i}"), owners.get(i).copied().flatten())).collect()
    }

    fn choose_for<'a>(me: &'a str, leases: &'a [Lease], expired: &'a HashSet<String>) -> Vec<Take<'a>> {
        choose(&Round { me, leases, expired, max_leases: None, first: None })
    }

    fn keys(takes: &[Take]) -> Vec<String> {
        takes
            .iter()
            .map(|t| match t {
                Take::Free(l) => format!("free {}", l.key),
                Take::Steal(l) => format!("steal {}", l.key),
            })
            .collect()
    }

    #[test]
    fn a_worker_takes_its_fair_share_of_free_leases() {
        // 8 leases, three workers (two of them visible by one lease each): 3 each.
        let leases = table(8, &[Some("a"), Some("b")]);
        assert_eq!(keys(&choose_for("c", &leases, &HashSet::new())), ["free s2", "free s3", "free s4"]);
    }

    #[test]
    fn a_lone_worker_takes_every_lease() {
        let leases = table(8, &[]);
        assert_eq!(choose_for("a", &leases, &HashSet::new()).len(), 8);
    }

    #[test]
    fn three_workers_on_a_fresh_table_settle_at_three_three_two() {
        let mut leases = table(8, &[]);
        let workers = ["a", "b", "c"];
        let mut quiet_rounds = 0;
        for _ in 0..20 {
            let mut moved = false;
            for me in workers {
                let takes: Vec<String> = choose_for(me, &leases, &HashSet::new())
                    .iter()
                    .map(|t| match t {
                        Take::Free(l) | Take::Steal(l) => l.key.clone(),
                    })
                    .collect();
                for key in takes {
                    moved = true;
                    leases.iter_mut().find(|l| l.key == key).unwrap().owner = Some(me.into());
                }
            }
            quiet_rounds = if moved { 0 } else { quiet_rounds + 1 };
        }
        assert!(quiet_rounds > 0, "workers still trading leases after 20 rounds");
        let mut counts: Vec<usize> = workers
            .iter()
            .map(|w| leases.iter().filter(|l| l.owner.as_deref() == Some(*w)).count())
            .collect();
        counts.sort();
        assert_eq!(counts, [2, 3, 3]);
    }

    #[test]
    fn expired_leases_are_taken_after_unowned_ones() {
        // a holds s0..s2 but stopped renewing s0 and s1; s3 is unowned.
        let leases = table(4, &[Some("a"), Some("a"), Some("a")]);
        let expired = HashSet::from(["s0".to_string(), "s1".to_string()]);
        // Two workers (a still renews s2): a share of 2.
        assert_eq!(keys(&choose_for("b", &leases, &expired)), ["free s3", "free s0"]);
    }

    #[test]
    fn a_worker_never_retakes_what_it_holds_but_takes_back_its_expired_lease() {
        let leases = table(3, &[Some("me"), Some("me")]);
        let expired = HashSet::from(["s1".to_string()]);
        assert_eq!(keys(&choose_for("me", &leases, &expired)), ["free s2", "free s1"]);
    }

    #[test]
    fn children_wait_until_every_parent_has_ended() {
        let leases = vec![
            ended("p0", Some("a")),
            lease("p1", Some("a")),
            child("split", &["p0"]),
            child("blocked", &["p1"]),
            child("merged", &["p0", "p1"]),
            child("orphan", &["gone"]),
        ];
        // Open: p1, split, blocked, merged, orphan; workers a and b: a share of 3.
        assert_eq!(keys(&choose_for("b", &leases, &HashSet::new())), ["free orphan", "free split"]);

        // Once p1's end is committed, its children are free, and a (holding
        // only ended leases) no longer counts as a worker.
        let mut leases = leases;
        leases[1].checkpoint = SHARD_END.into();
        assert_eq!(
            keys(&choose_for("b", &leases, &HashSet::new())),
            ["free blocked", "free merged", "free orphan", "free split"]
        );
    }

    #[test]
    fn ended_leases_are_never_taken() {
        let leases = vec![ended("s0", None), ended("s1", Some("a")), lease("s2", None)];
        assert_eq!(keys(&choose_for("b", &leases, &HashSet::new())), ["free s2"]);
    }

    #[test]
    fn max_leases_caps_the_share() {
        let leases = table(8, &[]);
        let expired = HashSet::new();
        let round = Round { me: "a", leases: &leases, expired: &expired, max_leases: Some(2), first: None };
        assert_eq!(keys(&choose(&round)), ["free s0", "free s1"]);

        let leases = table(8, &[Some("a"), Some("a")]);
        let round = Round { me: "a", leases: &leases, expired: &expired, max_leases: Some(2), first: None };
        assert!(choose(&round).is_empty());
    }

    #[test]
    fn a_worker_steals_one_lease_from_the_most_loaded() {
        // a 5, b 1, c 0: a share of 2, and c steals a's lowest key only.
        let leases = table(6, &[Some("a"), Some("b"), Some("a"), Some("a"), Some("a"), Some("a")]);
        assert_eq!(keys(&choose_for("c", &leases, &HashSet::new())), ["steal s0"]);
    }

    #[test]
    fn a_stolen_lease_is_one_whose_parents_have_ended() {
        // a holds a child of b's open lease (as a KCL worker might): not that one.
        let mut leases = table(6, &[Some("b"), Some("a"), Some("a"), Some("a"), Some("a"), Some("a")]);
        leases[1].parents = vec!["s0".into()];
        assert_eq!(keys(&choose_for("c", &leases, &HashSet::new())), ["steal s2"]);
    }

    #[test]
    fn no_stealing_when_the_most_loaded_is_at_its_share() {
        // 3/3/2 of 8: a share of 3, nobody above it.
        let leases = table(
            8,
            &[Some("a"), Some("a"), Some("a"), Some("b"), Some("b"), Some("b"), Some("c"), Some("c")],
        );
        assert!(choose_for("c", &leases, &HashSet::new()).is_empty());
    }

    #[test]
    fn a_new_worker_joining_four_and_four_steals_one() {
        let leases = table(
            8,
            &[Some("a"), Some("b"), Some("a"), Some("b"), Some("a"), Some("b"), Some("a"), Some("b")],
        );
        // Ties break by name: a is the most loaded.
        assert_eq!(keys(&choose_for("c", &leases, &HashSet::new())), ["steal s0"]);
    }

    #[test]
    fn an_exports_files_are_shared_before_any_shard_is_taken() {
        let leases = [
            lease("x/data/0", Some("a")),
            lease("x/data/1", None),
            lease("x/data/2", None),
            lease("s0", None),
        ];
        let round =
            Round { me: "b", leases: &leases, expired: &HashSet::new(), max_leases: None, first: Some("x/") };
        // Three files between two workers: two each at most, and no shard.
        assert_eq!(keys(&choose(&round)), ["free x/data/1", "free x/data/2"]);
        let loaded = [
            ended("x/data/0", None),
            ended("x/data/1", None),
            lease("x/data/2", Some("a")),
            lease("s0", None),
        ];
        let round =
            Round { me: "b", leases: &loaded, expired: &HashSet::new(), max_leases: None, first: Some("x/") };
        assert!(choose(&round).is_empty(), "a shard was taken while a file is open");
        let done = [ended("x/data/0", None), ended("x/data/2", None), lease("s0", None), lease("s1", None)];
        let round =
            Round { me: "b", leases: &done, expired: &HashSet::new(), max_leases: None, first: Some("x/") };
        assert_eq!(keys(&choose(&round)), ["free s0", "free s1"]);
    }
}
