//! The Redshift path, through the project's Data API stand-in on the test
//! PostgreSQL: the same end state as SQLite, COPY from S3 for batches too
//! large for statements, crash-resume, a database restart, throttling and
//! transient failures retried, fatal errors reported with their statement,
//! and values Redshift would refuse dead-lettered.

use std::process::Command;
use std::time::{Duration, Instant};

use redshift_standin::{Config, StandIn};
use sluice::generator::{self, GenOptions, Precision};
use sluice_test_support::{moto, postgres, unique_name};

use crate::util::{
    ItemState, SOFT_AND_HARD, assert_pg_like_oracle, count, pg_state, pipeline, pipeline_into, run_ok,
    runtime, s3, scratch, sluice, stdout,
};

const TABLES: &str = SOFT_AND_HARD;

/// A fresh database behind a fresh stand-in, and a bucket for staging.
pub(crate) struct Warehouse {
    pub url: String,
    pub standin: StandIn,
    bucket: String,
}

impl Warehouse {
    pub fn new() -> Self {
        Self::on(postgres::shared())
    }

    fn on(cluster: &postgres::Cluster) -> Self {
        let url = cluster.fresh_database("redshift");
        let standin = StandIn::start(Config {
            postgres_url: url.clone(),
            s3_endpoint: Some(moto::shared().endpoint()),
        })
        .unwrap();
        let bucket = unique_name("stage").replace('_', "-");
        runtime().block_on(s3().create_bucket().bucket(&bucket).send()).unwrap();
        Warehouse { url, standin, bucket }
    }

    pub fn sink(&self, extra: &str) -> String {
        format!(
            "type = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"wg\"\n\
             secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice\"\nschema = \"cdc\"\n{extra}"
        )
    }

    fn staging(&self) -> String {
        format!(
            "iam_role = \"arn:aws:iam::123456789012:role/copy\"\nstaging = \"s3://{}/sluice/\"",
            self.bucket
        )
    }

    /// `sluice` pointed at the stand-in and moto, with fake credentials.
    pub fn sluice(&self) -> Command {
        let mut cmd = sluice();
        aws_env(&mut cmd, &self.standin.endpoint());
        cmd
    }

    fn state(&self, target: &str) -> Vec<ItemState> {
        pg_state(&self.url, target)
    }

    pub fn assert_like_oracle(&self, g: &generator::Generated) {
        assert_pg_like_oracle(&self.url, g);
    }

    fn staged_objects(&self) -> usize {
        let listed = runtime().block_on(s3().list_objects_v2().bucket(&self.bucket).send()).unwrap();
        listed.contents().len()
    }
}

fn aws_env(cmd: &mut Command, redshift_data: &str) {
    cmd.env("AWS_ENDPOINT_URL_REDSHIFT_DATA", redshift_data)
        .env("AWS_ENDPOINT_URL_S3", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
}

fn stream(seed: u64, changes: usize) -> generator::Generated {
    stream_of(seed, changes, 60)
}

fn stream_of(seed: u64, changes: usize, items: usize) -> generator::Generated {
    generator::generate(&GenOptions {
        changes,
        items,
        seed,
        precision: Precision::Microsecond,
        reorder: 40,
        duplicates: 0.1,
        ..Default::default()
    })
}

#[test]
fn redshift_ends_in_the_same_state_as_sqlite() {
    let w = Warehouse::new();
    let g = stream(51, 2000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 37, &w.sink(""), TABLES);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    w.assert_like_oracle(&g);

    let lite = scratch();
    let lite_summary =
        stdout(&run_ok(sluice().arg("run").arg(pipeline(lite.path(), &g.records, 37, TABLES))));
    for label in ["records read", "rows upserted", "rows deleted", "stale, not applied", "dead-lettered"] {
        assert_eq!(count(&summary, label), count(&lite_summary, label), "{label}");
    }
    assert!(!w.standin.statements().iter().any(|s| s.starts_with("COPY")), "small batches need no COPY");

    let again = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&again, "records read"), 0);

    let status = stdout(&run_ok(w.sluice().arg("status").arg(&manifest)));
    let live = w.state("orders_cdc").iter().filter(|i| !i.deleted).count();
    assert!(status.contains(&format!("orders_cdc: {live} live")), "{status}");
    assert!(status.contains("stream.jsonl"), "{status}");
}

#[test]
fn a_batch_too_large_for_statements_goes_through_s3_and_copy() {
    let w = Warehouse::new();
    // Thousands of distinct items, so the batch stays large after deduplication.
    let g = stream_of(52, 8000, 8000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(&w.staging()), TABLES);
    run_ok(w.sluice().arg("run").arg(&manifest));
    w.assert_like_oracle(&g);
    let copies = w.standin.statements().iter().filter(|s| s.starts_with("COPY")).count();
    assert!(copies >= 1, "a batch of thousands of items should be loaded with COPY");
    assert_eq!(w.staged_objects(), 0, "staged objects are removed after the commit");
}

#[test]
fn redshift_resumes_after_a_crash_mid_batch() {
    let w = Warehouse::new();
    let g = stream(53, 1200);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 50, &w.sink(""), TABLES);
    let crashed = w
        .sluice()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::before_commit=3*off->return")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let resumed = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&resumed, "records read"), g.records.len() as u64 - 150);
    w.assert_like_oracle(&g);
}

#[test]
fn throttling_and_transient_failures_are_retried() {
    let w = Warehouse::new();
    let g = stream(54, 600);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(""), TABLES);
    w.standin.throttle_next(3);
    w.standin.fail_next_statements(2, "1023: Serializable isolation violation on table orders_cdc");
    let out = run_ok(w.sluice().arg("run").arg(&manifest));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("retrying"), "{log}");
    w.assert_like_oracle(&g);
}

#[test]
fn a_fatal_error_stops_with_the_failing_statement_and_commits_nothing() {
    let w = Warehouse::new();
    let g = stream(55, 300);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(""), TABLES);
    // Commit one batch and stop, then make the next write fail for good.
    let first =
        w.sluice().arg("run").arg(&manifest).env("FAILPOINTS", "sink::after_commit=return").output().unwrap();
    assert!(!first.status.success());
    w.standin.fail_next_statements(1, "permission denied for relation orders_cdc");
    let out = w.sluice().arg("run").arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied for relation orders_cdc"), "{stderr}");
    assert!(stderr.contains("in: "), "the failing statement is quoted: {stderr}");
    assert!(!stderr.contains("secret"), "no credentials in errors: {stderr}");

    let resumed = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&resumed, "records read"), g.records.len() as u64 - 100);
    w.assert_like_oracle(&g);
}

#[test]
fn the_database_restarting_mid_run_loses_nothing() {
    let cluster = postgres::dedicated();
    let w = Warehouse::on(&cluster);
    let g = stream(56, 4000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 40, &w.sink(""), TABLES);
    let mut run = w.sluice().arg("run").arg(&manifest).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.standin.statements().iter().filter(|s| s.contains("_sluice_checkpoints (pipeline")).count() < 3 {
        assert!(Instant::now() < deadline, "no batch was committed in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.restart();
    assert!(run.wait().unwrap().success(), "the run failed after the restart");
    w.assert_like_oracle(&g);
}

#[test]
fn values_redshift_would_refuse_are_dead_lettered() {
    let w = Warehouse::new();
    let g = stream(57, 300);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 500, &w.sink("super_max_string_bytes = 12"), TABLES);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert!(count(&summary, "dead-lettered") > 0, "{summary}");
    let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
    let reasons = client.query("SELECT DISTINCT reason FROM cdc._sluice_dead_letters", &[]).unwrap();
    assert!(
        reasons.iter().all(|r| r
            .get::<_, String>(0)
            .contains("SUPER strings hold at most 12 (super_max_string_bytes)")),
        "{:?}",
        reasons.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    );
}

#[test]
fn without_staging_a_large_batch_is_split_into_transactions_and_lands_whole() {
    let w = Warehouse::new();
    let g = stream_of(58, 8000, 8000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(""), TABLES);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    let batches: usize =
        summary.split(" (").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    let fences =
        w.standin.statements().iter().filter(|s| s.starts_with("SELECT 1 / (CASE WHEN epoch")).count();
    assert!(fences > batches, "{batches} batches took only {fences} transactions");
    assert!(!w.standin.statements().iter().any(|s| s.starts_with("COPY")));
    w.assert_like_oracle(&g);
}
