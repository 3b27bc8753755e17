//! Any permutation of a change stream, with duplicates, cut into any batches
//! and split across two runs, ends in the same table as the ordered stream.

use std::cell::RefCell;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sluice::generator::{self, GenOptions, Precision};
use sluice::guest::GuestRuntime;

use crate::util::{dump, scratch};

/// Everything that defines an item's stored state; source positions differ
/// between orders of arrival, so they are left out.
const STATE: &str = "SELECT table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, \
    new_image, old_image, is_deleted, is_ttl_delete, change_micros, raw_payload FROM cdc ORDER BY table_name, keys";
const TOMBSTONES: &str =
    "SELECT table_name, keys, change_micros, event_id FROM _sluice_tombstones ORDER BY 1, 2";

fn run(runtime: &mut GuestRuntime, dir: &Path, parts: &[&[String]], batch: usize, deletes: &str) {
    let manifest = dir.join("p.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"p\"\n[source]\ntype = \"file\"\npath = \"s.jsonl\"\n[sink]\ntype = \"sqlite\"\npath = \"p.db\"\n\
             [batch]\nmax_records = {batch}\n[defaults]\ntarget = \"cdc\"\ndeletes = \"{deletes}\"\n"
        ),
    )
    .unwrap();
    let plan = sluice::manifest::load(&manifest).unwrap();
    let mut written = Vec::new();
    for part in parts {
        // The second part is appended to the file the first run already read.
        written.extend(part.iter().cloned());
        std::fs::write(dir.join("s.jsonl"), written.join("\n") + "\n").unwrap();
        sluice::pipeline::run(&plan, runtime, &Default::default()).unwrap();
    }
}

#[test]
fn any_arrival_order_with_duplicates_converges_to_the_ordered_result() {
    let runtime = RefCell::new(GuestRuntime::with_cache(Some(crate::util::cache_dir())).unwrap());
    let stream = (any::<u64>(), prop::bool::ANY).prop_flat_map(|(seed, micro)| {
        let g = generator::generate(&GenOptions {
            tables: vec!["orders".into(), "customers".into()],
            items: 6,
            changes: 40,
            seed,
            precision: if micro { Precision::Microsecond } else { Precision::Millisecond },
            duplicates: 0.0,
            reorder: 0,
            deletes: 0.15,
            ttl_deletes: 0.05,
            ..Default::default()
        });
        let n = g.records.len();
        (
            Just(g.records.clone()).prop_shuffle(),
            prop::collection::vec((0..n, 0..n), 0..15),
            1..=12usize,
            0..=n,
            prop::bool::ANY,
            Just(g.records),
        )
    });
    let mut runner = TestRunner::new(Config { cases: 40, ..Config::default() });
    runner
        .run(&stream, |(shuffled, dups, batch, split, hard, ordered)| {
            let mut arrived = shuffled;
            for (from, to) in dups {
                let copy = arrived[from].clone();
                arrived.insert(to.min(arrived.len()), copy);
            }
            let split = split.min(arrived.len());
            let deletes = if hard { "hard" } else { "soft" };
            let mut runtime = runtime.borrow_mut();

            let reference = scratch();
            run(&mut runtime, reference.path(), &[&ordered], 1, deletes);
            let actual = scratch();
            run(&mut runtime, actual.path(), &[&arrived[..split], &arrived[split..]], batch, deletes);

            let (a, b) = (reference.path().join("p.db"), actual.path().join("p.db"));
            prop_assert_eq!(dump(&b, STATE), dump(&a, STATE));
            prop_assert_eq!(dump(&b, TOMBSTONES), dump(&a, TOMBSTONES));
            Ok(())
        })
        .unwrap();
}
