//! A table's batch shared by several instances of its transform
//! (`[guest] threads`) stores what one instance stores: outcomes keep the
//! records' order, so an item's latest change still wins, and a record a
//! guest fails on costs only itself, whichever instance had it.

use sluice::generator::{self, GenOptions};

use crate::faults::{FAULTY, poisoned};
use crate::util::{count, dump, expected_soft, pipeline, run_ok, scratch, sluice, stdout, table_state};

#[test]
fn four_instances_sharing_each_batch_store_what_one_instance_stores() {
    let dir = scratch();
    // Few items, many changes: each item's changes, duplicates and late
    // arrivals fall into every instance's run of a batch.
    let g = generator::generate(&GenOptions {
        changes: 4000,
        items: 25,
        seed: 7,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let mut records = g.records.clone();
    let poisoned_at = [130, 1_555, 2_980];
    for (at, fault) in poisoned_at.iter().zip(["panic", "miscount", "alloc"]) {
        records.insert(*at, poisoned(&records[*at], fault));
    }
    let tables = format!(
        "[guest]\nthreads = 4\nmemory_limit_mb = 64\n\
         [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n"
    );
    let manifest = pipeline(dir.path(), &records, 1000, &tables);

    let out = run_ok(sluice().env("SLUICE_LOG", "sluice::guest::pool=debug").arg("run").arg(&manifest));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("instances=4"), "batches were shared by four instances: {log}");
    let summary = stdout(&out);
    assert_eq!(count(&summary, "guest faults"), 3, "{summary}");
    let db = dir.path().join("out.db");
    assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
    let dead =
        dump(&db, "SELECT origin FROM _sluice_dead_letters ORDER BY CAST(substr(origin, 14) AS INTEGER)");
    let origins: Vec<String> = dead.into_iter().map(|r| r[0].clone().unwrap()).collect();
    let expected: Vec<String> = poisoned_at.iter().map(|at| format!("stream.jsonl:{}", at + 1)).collect();
    assert_eq!(origins, expected);
}
