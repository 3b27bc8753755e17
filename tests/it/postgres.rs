//! The PostgreSQL sink ends in the same state as SQLite, survives a crash
//! mid-batch and a server restart mid-run, and dead-letters what jsonb refuses.

use std::time::{Duration, Instant};

use sluice::generator::{self, GenOptions, Precision};
use sluice_test_support::postgres;

use crate::util::{
    ONE_BATCH_A_COMMIT, POSITIONS_ONLY, SOFT_AND_HARD, assert_pg_like_oracle, canonical_states, count,
    pg_state, pipeline, pipeline_into, run_ok, scratch, sluice, stdout, table_state,
};

const TABLES: &str = SOFT_AND_HARD;

fn sink(url: &str) -> String {
    format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\"")
}

fn stream(seed: u64, changes: usize) -> generator::Generated {
    generator::generate(&GenOptions {
        changes,
        items: 60,
        seed,
        precision: Precision::Microsecond,
        reorder: 40,
        duplicates: 0.1,
        ..Default::default()
    })
}

fn assert_like_oracle(url: &str, g: &generator::Generated) {
    assert_pg_like_oracle(url, g);
}

#[test]
fn postgres_ends_in_the_same_state_as_sqlite() {
    let g = stream(41, 3000);
    let url = postgres::shared().fresh_database("pg_same");
    let dir = scratch();
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 37, &sink(&url), &tables);
    let summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&summary, "records read"), g.records.len() as u64);
    assert_like_oracle(&url, &g);

    let lite = scratch();
    let manifest = pipeline(lite.path(), &g.records, 37, &tables);
    let lite_summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    for label in ["rows upserted", "rows deleted", "stale, not applied", "dead-lettered"] {
        assert_eq!(count(&summary, label), count(&lite_summary, label), "{label}");
    }
    let db = lite.path().join("out.db");
    assert_eq!(pg_state(&url, "orders_cdc"), canonical_states(table_state(&db, "orders_cdc")));
    assert_eq!(pg_state(&url, "other_cdc"), canonical_states(table_state(&db, "other_cdc")));

    let again = stdout(&run_ok(sluice().arg("run").arg(dir.path().join("pipeline.toml"))));
    assert_eq!(count(&again, "records read"), 0);

    let status = stdout(&run_ok(sluice().arg("status").arg(dir.path().join("pipeline.toml"))));
    let live = pg_state(&url, "orders_cdc").iter().filter(|i| !i.deleted).count();
    assert!(status.contains(&format!("orders_cdc: {live} live")), "{status}");
    assert!(status.contains("stream.jsonl"), "{status}");
}

#[test]
fn postgres_resumes_after_a_crash_mid_batch() {
    let g = stream(42, 1500);
    let url = postgres::shared().fresh_database("pg_crash");
    let dir = scratch();
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 50, &sink(&url), &tables);
    let crashed = sluice()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::before_commit=4*off->return")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let positions = format!("SELECT position FROM cdc._sluice_checkpoints WHERE {POSITIONS_ONLY}");
    let position: String = client.query_one(&positions, &[]).unwrap().get(0);
    assert!(position.ends_with(r#""line":200}"#), "{position}");

    let resumed = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&resumed, "records read"), g.records.len() as u64 - 200);
    assert_like_oracle(&url, &g);
}

#[test]
fn postgres_restarting_mid_run_loses_nothing() {
    let g = stream(43, 20_000);
    let cluster = postgres::dedicated();
    let url = cluster.fresh_database("pg_restart");
    let dir = scratch();
    // One batch a commit: the restart must fall between two of the run's commits.
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 20, &sink(&url), &tables);
    let mut run = sluice().arg("run").arg(&manifest).stdout(std::process::Stdio::null()).spawn().unwrap();

    // Restart the server once some batches are committed, while the run goes on.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let committed = ::postgres::Client::connect(&url, ::postgres::NoTls)
            .and_then(|mut c| c.query("SELECT 1 FROM cdc._sluice_checkpoints", &[]))
            .map(|rows| !rows.is_empty())
            .unwrap_or(false);
        if committed {
            break;
        }
        assert!(Instant::now() < deadline, "no batch was committed within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run.try_wait().unwrap().is_none(), "the run ended before the restart");
    cluster.restart();
    let status = run.wait().unwrap();
    assert!(status.success(), "the run failed after the restart");
    assert_like_oracle(&url, &g);
}

#[test]
fn postgres_down_when_a_run_starts_is_waited_for() {
    let g = stream(45, 500);
    let cluster = postgres::dedicated();
    let url = cluster.fresh_database("pg_down");
    cluster.stop();
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 50, &sink(&url), TABLES);
    let run = sluice().arg("run").arg(&manifest).stdout(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.resume();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "the run gave up on a server that came back");
    assert_like_oracle(&url, &g);
}

#[test]
fn values_jsonb_refuses_are_dead_lettered_not_fatal() {
    let g = stream(44, 200);
    let mut records = g.records.clone();
    let nul = records[0].replacen(r#""name":{"S":""#, r#""name":{"S":"nul \u0000 here "#, 1);
    assert_ne!(nul, records[0], "the first record has a name");
    records.push(nul);
    let url = postgres::shared().fresh_database("pg_nul");
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &records, 500, &sink(&url), TABLES);
    let summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&summary, "dead-lettered"), 1, "{summary}");
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let reason: String = client.query_one("SELECT reason FROM cdc._sluice_dead_letters", &[]).unwrap().get(0);
    assert!(reason.contains("new_image holds the NUL character"), "{reason}");
}

#[test]
fn a_required_tls_connection_is_refused_by_a_plain_server() {
    let url = postgres::shared().fresh_database("pg_tls") + "?sslmode=require";
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &stream(45, 10).records, 10, &sink(&url), TABLES);
    let out = sluice().arg("run").arg(&manifest).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to postgres://sluice@127.0.0.1"), "{stderr}");
}

#[test]
fn two_runs_starting_on_a_fresh_schema_never_fail_on_the_catalogue() {
    let g = stream(46, 300);
    for attempt in 0..4 {
        let url = postgres::shared().fresh_database("race");
        let dir = scratch();
        let manifest = pipeline_into(dir.path(), &g.records, 20, &sink(&url), TABLES);
        let runs: Vec<_> = (0..2)
            .map(|_| {
                sluice()
                    .arg("run")
                    .arg(&manifest)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut finished = 0;
        for run in runs {
            let out = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                finished += 1;
            } else {
                assert!(stderr.contains("another run of pipeline"), "attempt {attempt}: {stderr}");
                assert_eq!(out.status.code(), Some(3), "a fenced run exits 3");
            }
        }
        assert!(finished >= 1, "attempt {attempt}: neither run finished");
        assert_like_oracle(&url, &g);
    }
}
