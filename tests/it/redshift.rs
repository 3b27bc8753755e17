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
    ItemState, ONE_BATCH_A_COMMIT, POSITIONS_ONLY, SOFT_AND_HARD, assert_pg_like_oracle, count, pg_state,
    pipeline, pipeline_into, run_ok, runtime, s3, scratch, sluice, stdout,
};

const TABLES: &str = SOFT_AND_HARD;

/// A fresh database behind a fresh stand-in, and a bucket for staging.
pub(crate) struct Warehouse {
    pub url: String,
    pub standin: StandIn,
    pub bucket: String,
}

impl Warehouse {
    pub fn new() -> Self {
        Self::on(postgres::shared())
    }

    fn on(cluster: &postgres::Cluster) -> Self {
        Self::answering_after(cluster, Duration::ZERO)
    }

    /// A warehouse whose every Data API request takes `latency`.
    fn answering_after(cluster: &postgres::Cluster, latency: Duration) -> Self {
        let url = cluster.fresh_database("redshift");
        let standin = StandIn::start(Config {
            postgres_url: url.clone(),
            s3_endpoint: Some(moto::shared().endpoint()),
            request_latency: latency,
            ..Config::default()
        })
        .unwrap();
        let bucket = unique_name("stage").replace('_', "-");
        runtime().block_on(s3().create_bucket().bucket(&bucket).send()).unwrap();
        Warehouse { url, standin, bucket }
    }

    pub fn sink(&self, extra: &str) -> String {
        format!(
            "type = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"sluice-wg\"\n\
             secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice\"\nschema = \"cdc\"\n{extra}"
        )
    }

    pub fn staging(&self) -> String {
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

    /// Per-batch staging tables still in the database.
    fn leftover_stages(&self) -> i64 {
        let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
        client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename ~ '^_sluice_[a-z]+_[0-9a-f]{12}_'",
                &[],
            )
            .unwrap()
            .get(0)
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
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 37, &w.sink(""), &tables);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    w.assert_like_oracle(&g);

    let lite = scratch();
    let lite_summary =
        stdout(&run_ok(sluice().arg("run").arg(pipeline(lite.path(), &g.records, 37, &tables))));
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
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 50, &w.sink(""), &tables);
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
fn a_newer_run_fences_out_an_older_one_which_exits_3_having_written_nothing_more() {
    let w = Warehouse::new();
    let g = stream(61, 400);
    let dir = scratch();
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 50, &w.sink(""), &tables);
    // The older run commits its first batch, then stalls before its second.
    let older = w
        .sluice()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::before_commit=1*off->1*sleep(10000)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_batch =
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'cdc' AND tablename = '_sluice_checkpoints'";
    while client.query_one(first_batch, &[]).unwrap().get::<_, i64>(0) == 0
        || client.query_one("SELECT count(*) FROM cdc._sluice_checkpoints", &[]).unwrap().get::<_, i64>(0)
            == 0
    {
        assert!(Instant::now() < deadline, "the older run committed nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The newer run takes over, resumes after that batch and finishes.
    let newer = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&newer, "records read"), g.records.len() as u64 - 50, "{newer}");

    let out = older.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a fenced run exits 3: {stderr}");
    assert!(stderr.contains("another run of pipeline"), "{stderr}");
    w.assert_like_oracle(&g);
}

#[test]
fn a_backlog_goes_to_a_warehouse_of_slow_requests_in_one_transaction() {
    let w = Warehouse::answering_after(postgres::shared(), Duration::from_millis(300));
    let g = stream(63, 2000);
    let dir = scratch();
    // Batches of 100; Redshift's default max_coalesce holds them all.
    let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(&w.staging()), TABLES);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    let (batches, commits) = crate::util::batches_and_commits(&summary);
    assert!(batches >= 20, "{summary}");
    assert_eq!(commits, 1, "start-up took longer than reading the file: {summary}");
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
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(""), &tables);
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
    // One batch a commit: the restart must fall between two of the run's commits.
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline_into(dir.path(), &g.records, 40, &w.sink(""), &tables);
    let mut run = w.sluice().arg("run").arg(&manifest).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.standin.statements().iter().filter(|s| s.contains("_sluice_checkpoints (pipeline")).count() < 3 {
        assert!(Instant::now() < deadline, "no batch was committed in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run.try_wait().unwrap().is_none(), "the run ended before the restart");
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
fn without_staging_a_large_batch_is_staged_over_several_requests_and_lands_whole() {
    let w = Warehouse::new();
    let g = stream_of(58, 8000, 8000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(""), TABLES);
    run_ok(w.sluice().arg("run").arg(&manifest));
    let statements = w.standin.statements();
    assert!(statements.iter().any(|s| s.starts_with("CREATE TABLE \"cdc\".\"_sluice_stage_")));
    assert!(!statements.iter().any(|s| s.starts_with("COPY")));
    w.assert_like_oracle(&g);
    assert_eq!(w.leftover_stages(), 0, "staging tables are dropped with the batch");
}

#[test]
fn staging_tables_a_crashed_run_left_behind_are_dropped_at_the_next_start() {
    let w = Warehouse::new();
    let g = stream_of(62, 8000, 8000);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(""), TABLES);
    // Staged over several requests, then killed before the applying one.
    let crashed = w
        .sluice()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::before_commit=return")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    assert!(w.leftover_stages() > 0, "the crash leaves the batch's staging tables");
    run_ok(w.sluice().arg("run").arg(&manifest));
    assert_eq!(w.leftover_stages(), 0, "the next run drops them");
    w.assert_like_oracle(&g);
}

/// A change of an item of `bytes` bytes of DynamoDB JSON, in attributes of
/// 8 KB (SUPER strings hold at most 64 KB), with an old image as large.
fn large_item_change(id: &str, bytes: usize, micros: u64) -> String {
    let attributes: Vec<String> =
        (0..bytes / 8_000).map(|i| format!(r#""a{i}":{{"S":"{}"}}"#, "x".repeat(8_000))).collect();
    let image = format!(r#"{{"id":{{"S":"{id}"}},{}}}"#, attributes.join(","));
    format!(
        r#"{{"eventID":"big-{id}","eventName":"MODIFY","tableName":"orders","eventSource":"aws:dynamodb","dynamodb":{{"ApproximateCreationDateTime":{micros},"ApproximateCreationDateTimePrecision":"MICROSECOND","Keys":{{"id":{{"S":"{id}"}}}},"NewImage":{image},"OldImage":{image}}}}}"#
    )
}

#[test]
fn an_item_of_400_kb_reaches_redshift_with_and_without_staging() {
    for staging in [false, true] {
        let w = Warehouse::new();
        let mut records = stream(59, 200).records;
        records.push(large_item_change("big", 400_000, 1_900_000_000_000_000));
        let dir = scratch();
        let sink = w.sink(&if staging { w.staging() } else { String::new() });
        let manifest = pipeline_into(dir.path(), &records, 500, &sink, TABLES);
        let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
        assert_eq!(count(&summary, "dead-lettered"), 0, "{summary}");
        let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT octet_length(new_image::text), octet_length(old_image::text) \
                 FROM cdc.orders_cdc WHERE keys = '{\"id\":\"big\"}'",
                &[],
            )
            .unwrap();
        let (new, old): (i32, i32) = (row.get(0), row.get(1));
        assert!(new > 400_000 && old == new, "staging {staging}: new_image {new} bytes, old_image {old}");
        assert_eq!(w.leftover_stages(), 0);
        // Status previews it in bounded rows (the Data API returns at most 64 KB per row).
        let status = stdout(&run_ok(w.sluice().arg("status").arg(&manifest)));
        assert!(
            status.contains(r#"{"big"}  {"a0":"xxxx"#) || status.contains(r#"{"id":"big"}  {"#),
            "{status}"
        );
    }
}

#[test]
fn a_dead_letter_keeps_its_whole_raw_record() {
    let w = Warehouse::new();
    // A 300 KB record that does not decode (an unknown attribute type).
    let bad =
        large_item_change("bad", 300_000, 1_900_000_000_000_000).replace(r#""a0":{"S""#, r#""a0":{"Q""#);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), std::slice::from_ref(&bad), 10, &w.sink(""), TABLES);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&summary, "dead-lettered"), 1, "{summary}");
    let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
    let raw: Vec<u8> = client.query_one("SELECT raw FROM cdc._sluice_dead_letters", &[]).unwrap().get(0);
    assert_eq!(raw, bad.as_bytes(), "the raw record is kept whole");
}

#[test]
fn fifty_target_tables_start_and_load() {
    let w = Warehouse::new();
    let tables: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let records: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"eventID":"e{i}","eventName":"INSERT","tableName":"{t}","eventSource":"aws:dynamodb","dynamodb":{{"ApproximateCreationDateTime":{},"Keys":{{"id":{{"S":"k"}}}},"NewImage":{{"id":{{"S":"k"}},"n":{{"N":"{i}"}}}}}}}}"#,
                1_767_225_600_000u64 + i as u64
            )
        })
        .collect();
    let routes: String =
        tables.iter().map(|t| format!("[[tables]]\nsource = \"{t}\"\ntarget = \"{t}_cdc\"\n")).collect();
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &records, 500, &w.sink(""), &routes);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&summary, "rows upserted"), 50, "{summary}");
    for t in &tables {
        assert_eq!(w.state(&format!("{t}_cdc")).len(), 1, "{t}");
    }
}

#[test]
fn a_24_shard_stream_commits_batches_with_every_shard_position() {
    let w = Warehouse::new();
    let shards = crate::kinesis::Stream::new(24);
    let g = stream(60, 3000);
    shards.put(&g.records);
    let dir = scratch();
    let manifest = dir.path().join("k.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"k24\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{}\"\n[sink]\n{}\n\
             [batch]\nmax_records = 10000\nmax_wait_ms = 3000\nlinger_ms = 3000\n{TABLES}",
            shards.arn,
            w.sink("")
        ),
    )
    .unwrap();
    let mut cmd = w.sluice();
    cmd.env("AWS_ENDPOINT_URL_KINESIS", sluice_test_support::kinesis::shared().endpoint());
    run_ok(cmd.arg("run").arg(&manifest).arg("--exit-when-caught-up"));
    let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
    let positions = format!("SELECT count(*) FROM cdc._sluice_checkpoints WHERE {POSITIONS_ONLY}");
    let shards: i64 = client.query_one(&positions, &[]).unwrap().get(0);
    assert_eq!(shards, 24);
    let widest = w
        .standin
        .statements()
        .iter()
        .filter(|s| s.starts_with("INSERT INTO \"cdc\"._sluice_checkpoints"))
        .map(|s| s.matches("shardId-").count())
        .max()
        .unwrap_or(0);
    assert!(widest >= 20, "no batch carried most shards' positions (at most {widest})");
    w.assert_like_oracle(&g);
}

#[test]
fn a_dead_letter_table_of_the_old_layout_is_kept_beside_the_new_one() {
    let w = Warehouse::new();
    let mut client = ::postgres::Client::connect(&w.url, ::postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE SCHEMA cdc; CREATE TABLE cdc._sluice_dead_letters (pipeline text, origin text, table_name text, \
             reason text, raw text, raw_encoding text, raw_size_bytes int, raw_truncated boolean, failed_at timestamp); \
             INSERT INTO cdc._sluice_dead_letters VALUES ('it', 'old:1', NULL, 'old', 'x', 'utf8', 1, false, now())",
        )
        .unwrap();
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &["not json".to_owned()], 10, &w.sink(""), TABLES);
    run_ok(w.sluice().arg("run").arg(&manifest));
    let old: i64 = client.query_one("SELECT count(*) FROM cdc._sluice_dead_letters_v1", &[]).unwrap().get(0);
    let raw: Vec<u8> = client.query_one("SELECT raw FROM cdc._sluice_dead_letters", &[]).unwrap().get(0);
    assert_eq!((old, raw), (1, b"not json".to_vec()));
}

#[test]
fn every_sign_in_the_data_api_supports_is_accepted_and_loads() {
    let secret = "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice\"";
    let combinations = [
        ("workgroup = \"sluice-wg\"", secret),
        ("workgroup = \"sluice-wg\"", ""),
        ("cluster = \"sluice-cluster\"", secret),
        ("cluster = \"sluice-cluster\"", "db_user = \"awsuser\""),
        ("cluster = \"sluice-cluster\"", ""),
    ];
    for (compute, auth) in combinations {
        let w = Warehouse::new();
        let g = stream(61, 100);
        let dir = scratch();
        let sink = format!("type = \"redshift\"\ndatabase = \"dev\"\n{compute}\n{auth}\nschema = \"cdc\"");
        let manifest = pipeline_into(dir.path(), &g.records, 50, &sink, TABLES);
        run_ok(w.sluice().arg("validate").arg(&manifest));
        run_ok(w.sluice().arg("run").arg(&manifest));
        w.assert_like_oracle(&g);
    }
    let dir = scratch();
    let sink = "type = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"sluice-wg\"\ndb_user = \"awsuser\"";
    let manifest = pipeline_into(dir.path(), &[], 50, sink, TABLES);
    let out = sluice().arg("validate").arg(&manifest).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(":9:11: db_user works with a provisioned cluster"),
        "{err}"
    );
}

#[test]
fn the_data_api_transient_exceptions_are_retried() {
    use redshift_standin::CallFault::*;
    for kind in [
        ExecuteStatementException,
        BatchExecuteStatementException,
        DatabaseConnectionException,
        InternalServerException,
        ThrottlingException,
        ActiveStatementsExceededException,
    ] {
        let w = Warehouse::new();
        let g = stream(62, 300);
        let dir = scratch();
        let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(""), TABLES);
        w.standin.fail_next_calls(5, kind);
        let out = w.sluice().arg("run").arg(&manifest).output().unwrap();
        assert!(out.status.success(), "{kind:?}: {}", String::from_utf8_lossy(&out.stderr));
        w.assert_like_oracle(&g);
    }
}

#[test]
fn after_a_lost_response_the_batch_is_followed_up_not_sent_again() {
    let w = Warehouse::new();
    let g = stream(63, 300);
    let dir = scratch();
    let manifest = pipeline_into(dir.path(), &g.records, 100, &w.sink(""), TABLES);
    // More lost responses than the SDK's own three attempts: sluice's retry
    // must ask for the same statement again, not send the batch a second time.
    let needle = "INSERT INTO \"cdc\"._sluice_checkpoints";
    w.standin.lose_next_responses_to(5, needle);
    let summary = stdout(&run_ok(w.sluice().arg("run").arg(&manifest)));
    let (_, commits) = crate::util::batches_and_commits(&summary);
    let sent = w.standin.statements().iter().filter(|s| s.contains(needle)).count();
    // And one more when the run ends: the last batch's totals (pipeline/totals.rs).
    assert_eq!(sent as u64, commits + 1, "each batch's transaction was created once");
    w.assert_like_oracle(&g);
}

#[test]
fn a_staging_bucket_in_another_region_than_the_cluster_works() {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let w = Warehouse::new();
    let bucket = unique_name("eu-stage").replace('_', "-");
    let config =
        CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build();
    runtime()
        .block_on(s3().create_bucket().bucket(&bucket).create_bucket_configuration(config).send())
        .unwrap();
    let g = stream_of(64, 8000, 8000);
    let dir = scratch();
    let staging =
        format!("iam_role = \"arn:aws:iam::123456789012:role/copy\"\nstaging = \"s3://{bucket}/sluice/\"");
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(&staging), TABLES);
    run_ok(w.sluice().arg("run").arg(&manifest));
    w.assert_like_oracle(&g);
    let copies: Vec<String> = w.standin.statements().into_iter().filter(|s| s.starts_with("COPY")).collect();
    assert!(!copies.is_empty() && copies.iter().all(|c| c.ends_with("REGION 'eu-west-1'")), "{copies:?}");
}
