//! `sluice status` only reads. Called over and over while a run writes, on
//! every sink, it leaves the run's result exact; on a pipeline that never ran
//! it creates nothing: no file, no schema, no table, no object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use sluice::generator::{self, GenOptions, Generated, Precision};
use sluice_test_support::{postgres, unique_name};

use crate::export::sluice_s3;
use crate::redshift::Warehouse;
use crate::s3_sink::{distinct_events, s3_objects};
use crate::util::{
    ONE_BATCH_A_COMMIT, SOFT_AND_HARD, assert_pg_like_oracle, assert_same_items, expected_soft,
    pipeline_into, run_ok, runtime, s3, scratch, sluice, stdout, table_state,
};

fn workload(seed: u64) -> Generated {
    generator::generate(&GenOptions {
        changes: 1200,
        items: 60,
        seed,
        precision: Precision::Microsecond,
        reorder: 30,
        duplicates: 0.1,
        ..Default::default()
    })
}

/// Runs `run` to its end with a pause before every commit (the window in
/// which a batch is written but not committed), calling `status` in a loop
/// meanwhile; every status call must succeed.
fn run_while_calling_status(mut run: Command, status: impl Fn() -> Command) {
    let mut child = run.env("FAILPOINTS", "sink::before_commit=sleep(40)").spawn().unwrap();
    let mut calls = 0;
    let finished = loop {
        if let Some(finished) = child.try_wait().unwrap() {
            break finished;
        }
        run_ok(&mut status());
        calls += 1;
    };
    assert!(finished.success(), "the run failed: {finished}");
    assert!(calls >= 3, "status ran only {calls} times during the run");
}

/// The manifest's `[[tables]]` into the given sink; batches of 40, each
/// committed alone so that a run has a commit window for every batch (group
/// commit would merge a fast file's batches into a few).
fn manifest(dir: &Path, g: &Generated, sink: &str) -> std::path::PathBuf {
    pipeline_into(dir, &g.records, 40, sink, &format!("{ONE_BATCH_A_COMMIT}{SOFT_AND_HARD}"))
}

#[test]
fn status_during_a_sqlite_run_changes_nothing() {
    let g = workload(91);
    let dir = scratch();
    let manifest = manifest(dir.path(), &g, "type = \"sqlite\"\npath = \"out.db\"");
    let mut run = sluice();
    run.arg("run").arg(&manifest);
    run_while_calling_status(run, || {
        let mut status = sluice();
        status.arg("status").arg(&manifest);
        status
    });
    let db = dir.path().join("out.db");
    assert_same_items(&table_state(&db, "orders_cdc"), &expected_soft(&g.expected, &["orders"]));
    let others = expected_soft(&g.expected, &["customers", "devices"]);
    let live: Vec<_> = others.into_iter().filter(|i| !i.deleted).collect();
    assert_same_items(&table_state(&db, "other_cdc"), &live);
}

#[test]
fn status_of_a_sqlite_pipeline_that_never_ran_creates_no_file() {
    let g = workload(92);
    let dir = scratch();
    let manifest = manifest(dir.path(), &g, "type = \"sqlite\"\npath = \"out/never.db\"");
    let out = stdout(&run_ok(sluice().arg("status").arg(&manifest)));
    assert!(out.contains("none yet"), "{out}");
    assert!(!dir.path().join("out").exists(), "status created {}", dir.path().join("out").display());
}

#[test]
fn status_during_a_postgres_run_changes_nothing_and_creates_nothing_before() {
    let g = workload(93);
    let url = postgres::shared().fresh_database("status");
    let dir = scratch();
    let manifest =
        manifest(dir.path(), &g, &format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\""));
    let status = || {
        let mut status = sluice();
        status.arg("status").arg(&manifest);
        status
    };
    let out = stdout(&run_ok(&mut status()));
    assert!(out.contains("none yet"), "{out}");
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let schemas: i64 =
        client.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'cdc'", &[]).unwrap().get(0);
    assert_eq!(schemas, 0, "status created the schema");

    let mut run = sluice();
    run.arg("run").arg(&manifest);
    run_while_calling_status(run, status);
    assert_pg_like_oracle(&url, &g);
}

#[test]
fn status_during_a_redshift_run_changes_nothing_and_creates_nothing_before() {
    let w = Warehouse::new();
    let g = workload(94);
    let dir = scratch();
    let manifest = manifest(dir.path(), &g, &w.sink(""));
    let status = || {
        let mut status = w.sluice();
        status.arg("status").arg(&manifest);
        status
    };
    let out = stdout(&run_ok(&mut status()));
    assert!(out.contains("none yet"), "{out}");
    assert!(
        w.standin.statements().iter().all(|s| s.trim_start().to_ascii_uppercase().starts_with("SELECT")),
        "status sent more than SELECTs: {:?}",
        w.standin.statements()
    );

    let mut run = w.sluice();
    run.arg("run").arg(&manifest);
    run_while_calling_status(run, status);
    w.assert_like_oracle(&g);
}

#[test]
fn status_during_an_s3_run_keeps_every_change_exactly_once() {
    let bucket = unique_name("status").replace('_', "-");
    runtime().block_on(s3().create_bucket().bucket(&bucket).send()).unwrap();
    let g = workload(95);
    let dir = scratch();
    let manifest = manifest(dir.path(), &g, &format!("type = \"s3\"\npath = \"s3://{bucket}/out/\""));
    let status = || {
        let mut status = sluice_s3();
        status.arg("status").arg(&manifest);
        status
    };
    let out = stdout(&run_ok(&mut status()));
    assert!(out.contains("none yet"), "{out}");
    assert!(s3_objects(&bucket).is_empty(), "status wrote objects");

    let mut run = sluice_s3();
    run.arg("run").arg(&manifest);
    run_while_calling_status(run, status);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (key, lines) in s3_objects(&bucket) {
        if key.contains("/_sluice/") {
            continue;
        }
        for line in lines {
            *seen.entry(line["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "changes written twice: {twice:?}");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), distinct_events(&g));
}
