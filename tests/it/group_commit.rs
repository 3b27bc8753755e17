//! Group commit: batches read while the sink commits are merged into the
//! next transaction, up to `max_coalesce` records, and the result is the
//! same as committing them one by one.

use sluice::generator::{self, GenOptions};

use crate::util::{
    POSITIONS_ONLY, batches_and_commits, count, dump, expected_soft, pipeline, run_ok, scratch, sluice,
    stdout, table_state,
};

/// A run whose commits take 300 ms; `batch` joins `[batch]`.
fn slow_run(batch: &str) -> (u64, u64, String) {
    let g = generator::generate(&GenOptions {
        changes: 3000,
        items: 300,
        seed: 95,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let dir = scratch();
    // `pipeline` writes `[batch] max_records = 100`; the extra lines join that section.
    let manifest = pipeline(
        dir.path(),
        &g.records,
        100,
        &format!("{batch}[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n"),
    );
    // Every commit takes 300 ms, as a remote warehouse's might.
    let out = run_ok(sluice().arg("run").arg(&manifest).env("FAILPOINTS", "sink::before_commit=sleep(300)"));
    let summary = stdout(&out);
    let db = dir.path().join("out.db");
    assert_eq!(count(&summary, "records read"), g.records.len() as u64);
    assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
    let position = dump(&db, &format!("SELECT position FROM _sluice_checkpoints WHERE {POSITIONS_ONLY}"));
    assert!(position[0][0].as_deref().unwrap().ends_with(&format!("\"line\":{}}}", g.records.len())));
    let (batches, commits) = batches_and_commits(&summary);
    (batches, commits, summary)
}

#[test]
fn batches_read_while_the_sink_commits_go_into_the_next_transaction() {
    let (batches, commits, summary) = slow_run("");
    assert!(batches >= 30, "{summary}");
    assert!(commits * 10 <= batches, "{commits} commits for {batches} batches:\n{summary}");
}

#[test]
fn max_coalesce_bounds_a_transaction_and_zero_commits_every_batch() {
    let (batches, commits, summary) = slow_run("max_coalesce = 0\n");
    assert_eq!(commits, batches, "{summary}");
    // The first transaction is what was read while the sink started; read
    // faster than it commits, the file then fills every other but the last.
    let (_, commits, summary) = slow_run("max_coalesce = 500\n");
    assert!(commits <= count(&summary, "records read").div_ceil(500) + 1, "{summary}");
}
