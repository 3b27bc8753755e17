//! The stand-in driven by the real AWS SDK client, as sluice drives
//! Redshift, against a real PostgreSQL (and moto for COPY's S3). A missing
//! server fails the test with the reason; nothing is skipped.

use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatementStatusString, StatusString};
use redshift_standin::{CallFault, Config, StandIn};

/// A workgroup name the Data API's model accepts (3 to 128 of `[a-z0-9-]`).
const WG: &str = "sluice-wg";

/// A stand-in on a fresh database, and a Data API client pointed at it.
struct Harness {
    standin: StandIn,
    url: String,
    api: aws_sdk_redshiftdata::Client,
}

impl Harness {
    /// Must be called outside the async block: the support crate's
    /// PostgreSQL client runs its own runtime.
    fn new(s3_endpoint: Option<String>) -> Harness {
        Harness::with(Config { s3_endpoint, ..Config::default() })
    }

    /// A stand-in with `config` (its `postgres_url` is filled in).
    fn with(config: Config) -> Harness {
        let url = sluice_test_support::postgres::shared().fresh_database("standin");
        let standin =
            StandIn::start(Config { postgres_url: url.clone(), ..config }).expect("starting the stand-in");
        let api = data_api(&standin.endpoint(), 1);
        Harness { standin, url, api }
    }

    /// Runs `sql` and waits until it is done.
    async fn run(&self, sql: &str) -> DescribeStatementOutput {
        let id = self.submit(sql).await;
        wait(&self.api, &id).await
    }

    /// Runs `sql` and asserts that it finished.
    async fn ok(&self, sql: &str) -> DescribeStatementOutput {
        let done = self.run(sql).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{sql}: {:?}", done.error());
        done
    }

    /// Runs `sql` and returns the error it failed with.
    async fn fails(&self, sql: &str) -> String {
        let done = self.run(sql).await;
        assert_eq!(done.status(), Some(&StatusString::Failed), "{sql:.200} did not fail");
        done.error().expect("a failed statement has an Error").to_string()
    }

    async fn submit(&self, sql: &str) -> String {
        let out = self
            .api
            .execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sql(sql)
            .send()
            .await
            .expect("ExecuteStatement");
        out.id().expect("an Id").to_string()
    }

    async fn batch(&self, sqls: &[&str]) -> DescribeStatementOutput {
        let out = self
            .api
            .batch_execute_statement()
            .cluster_identifier("cluster")
            .database("dev")
            .db_user("sluice")
            .set_sqls(Some(sqls.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .expect("BatchExecuteStatement");
        wait(&self.api, out.id().expect("an Id")).await
    }

    async fn records(&self, id: &str) -> Vec<Vec<Field>> {
        let out = self.api.get_statement_result().id(id).send().await.expect("GetStatementResult");
        assert_eq!(out.total_num_rows(), out.records().len() as i64);
        out.records().to_vec()
    }

    /// A direct connection, to check what the statements did.
    async fn postgres(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connecting directly");
        tokio::spawn(connection);
        client
    }
}

fn data_api(endpoint: &str, attempts: u32) -> aws_sdk_redshiftdata::Client {
    let retry = aws_sdk_redshiftdata::config::retry::RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(10));
    let config = aws_sdk_redshiftdata::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDSTANDIN", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_redshiftdata::Client::from_conf(config)
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
}

/// Polls DescribeStatement until the statement is done, as sluice does.
async fn wait(api: &aws_sdk_redshiftdata::Client, id: &str) -> DescribeStatementOutput {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = api.describe_statement().id(id).send().await.expect("DescribeStatement");
        match out.status() {
            Some(StatusString::Finished | StatusString::Failed | StatusString::Aborted) => return out,
            _ if Instant::now() > deadline => panic!("{id} did not finish: {out:?}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn string(field: &Field) -> &str {
    match field {
        Field::StringValue(s) => s,
        other => panic!("expected a stringValue, got {other:?}"),
    }
}

fn sub_statuses(done: &DescribeStatementOutput) -> Vec<StatementStatusString> {
    done.sub_statements().iter().filter_map(|s| s.status().cloned()).collect()
}

#[test]
fn select_returns_typed_fields_and_column_metadata() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE kinds (i2 smallint, i4 int NOT NULL, i8 bigint, f float8, n numeric(12,3), \
              b boolean, v varchar(20) DEFAULT 'x', t text, ts timestamp, s super)")
            .await;
        h.ok("INSERT INTO kinds VALUES (1, 2, 9007199254740993, 1.5, 12.340, true, 'vé', 'tx', \
              '2024-05-06 07:08:09.5', JSON_PARSE('{\"a\": [1, \"b\"]}')), \
              (NULL, 3, NULL, NULL, NULL, false, NULL, NULL, NULL, NULL)")
            .await;

        let id = h
            .submit("SELECT i2, i4, i8, f, n, b, v, t, ts, s, i4 * 2 AS doubled FROM kinds ORDER BY i4")
            .await;
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished));
        assert_eq!((done.has_result_set(), done.result_rows()), (Some(true), 2));
        assert_eq!(
            done.query_string(),
            Some("SELECT i2, i4, i8, f, n, b, v, t, ts, s, i4 * 2 AS doubled FROM kinds ORDER BY i4")
        );
        assert!(done.sub_statements().is_empty(), "a plain statement has no sub-statements");
        assert!(done.duration() >= 0 && done.redshift_pid() > 0 && done.result_size() > 0);
        assert_eq!((done.database(), done.workgroup_name()), (Some("dev"), Some(WG)));

        let out = h.api.get_statement_result().id(&id).send().await.expect("GetStatementResult");
        assert_eq!(out.total_num_rows(), 2);
        let first = &out.records()[0];
        assert_eq!(first[0], Field::LongValue(1));
        assert_eq!(first[1], Field::LongValue(2));
        assert_eq!(first[2], Field::LongValue(9007199254740993));
        assert_eq!(first[3], Field::DoubleValue(1.5));
        assert_eq!(first[4], Field::StringValue("12.340".into()));
        assert_eq!(first[5], Field::BooleanValue(true));
        assert_eq!(first[6], Field::StringValue("vé".into()));
        assert_eq!(first[7], Field::StringValue("tx".into()));
        assert_eq!(first[8], Field::StringValue("2024-05-06 07:08:09.5".into()));
        assert_eq!(first[9], Field::StringValue(r#"{"a":[1,"b"]}"#.into()));
        assert_eq!(first[10], Field::LongValue(4));
        let second = &out.records()[1];
        assert_eq!(second[0], Field::IsNull(true));
        assert_eq!(second[5], Field::BooleanValue(false));
        assert!(second[6..10].iter().all(|f| *f == Field::IsNull(true)), "{second:?}");

        let meta = out.column_metadata();
        let types: Vec<_> = meta.iter().map(|m| m.type_name().unwrap_or_default()).collect();
        assert_eq!(
            types,
            [
                "int2",
                "int4",
                "int8",
                "float8",
                "numeric",
                "bool",
                "varchar",
                "varchar",
                "timestamp",
                "super",
                "int4"
            ]
        );
        assert_eq!((meta[4].precision(), meta[4].scale()), (12, 3));
        // Redshift makes TEXT a VARCHAR(256); widths are bytes.
        assert_eq!((meta[6].precision(), meta[7].precision()), (20, 256));
        assert_eq!(meta[6].column_default(), Some("'x'::text"));
        assert_eq!((meta[1].nullable(), meta[0].nullable()), (0, 1));
        assert_eq!((meta[1].table_name(), meta[1].schema_name()), (Some("kinds"), Some("public")));
        assert_eq!((meta[10].name(), meta[10].table_name()), (Some("doubled"), Some("")));
        assert!(meta[1].is_signed() && !meta[7].is_signed() && meta[7].is_case_sensitive());
    });
}

#[test]
fn a_request_latency_delays_every_answer() {
    let h = Harness::with(Config { request_latency: Duration::from_millis(300), ..Config::default() });
    block_on(async {
        let started = Instant::now();
        let id = h.submit("SELECT 1").await;
        assert!(started.elapsed() >= Duration::from_millis(300), "ExecuteStatement: {:?}", started.elapsed());
        let started = Instant::now();
        h.api.describe_statement().id(&id).send().await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "DescribeStatement: {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn statements_run_in_the_background_and_are_recorded() {
    let h = Harness::new(None);
    block_on(async {
        // ExecuteStatement returns before the query has run.
        let id = h.submit("SELECT pg_sleep(1)").await;
        let early = h.api.describe_statement().id(&id).send().await.unwrap();
        assert!(matches!(early.status(), Some(StatusString::Submitted | StatusString::Started)), "{early:?}");
        assert_eq!(early.duration(), -1);
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished));
        assert!(done.duration() >= 1_000_000_000, "Duration is in nanoseconds: {}", done.duration());
        let updated = done.updated_at().unwrap().as_secs_f64();
        let created = done.created_at().unwrap().as_secs_f64();
        assert!(updated - created >= 0.9, "{created} .. {updated}");

        // WaitTimeSeconds: the response says how far it got.
        let out = h
            .api
            .execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sql("SELECT 2")
            .wait_time_seconds(10)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (out.status(), out.has_result_set()),
            (Some(&StatementStatusString::Finished), Some(true))
        );
        h.batch(&["SELECT 3", "SELECT 4"]).await;
        assert_eq!(h.standin.statements(), ["SELECT pg_sleep(1)", "SELECT 2", "SELECT 3", "SELECT 4"]);

        // A statement without a result set.
        let done = h.ok("CREATE TABLE t (v int)").await;
        assert_eq!(done.has_result_set(), Some(false));
        let err = h.api.get_statement_result().id(done.id()).send().await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"));
    });
}

#[test]
fn batch_commits_and_sub_statements_are_addressable() {
    let h = Harness::new(None);
    block_on(async {
        let done = h
            .batch(&[
                "CREATE TABLE items (k int, v varchar(10))",
                "INSERT INTO items VALUES (1, 'a'), (2, 'b')",
                "SELECT k, v FROM items ORDER BY k",
            ])
            .await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        assert_eq!(sub_statuses(&done), vec![StatementStatusString::Finished; 3]);
        assert_eq!(done.has_result_set(), Some(true));
        assert_eq!(done.query_string(), None, "a batch has no QueryString of its own");
        assert_eq!((done.cluster_identifier(), done.db_user()), (Some("cluster"), Some("sluice")));
        let id = done.id().to_string();
        let subs = done.sub_statements();
        assert_eq!(subs[1].id(), format!("{id}:2"));
        assert_eq!(subs[1].query_string(), Some("INSERT INTO items VALUES (1, 'a'), (2, 'b')"));
        assert_eq!((subs[1].result_rows(), subs[1].has_result_set()), (2, Some(false)));

        let second = h.api.describe_statement().id(format!("{id}:2")).send().await.unwrap();
        assert_eq!(
            (second.id(), second.status()),
            (format!("{id}:2").as_str(), Some(&StatusString::Finished))
        );
        assert_eq!(second.result_rows(), 2);

        let records = h.records(&format!("{id}:3")).await;
        assert_eq!(records.len(), 2);
        assert_eq!((&records[1][0], string(&records[1][1])), (&Field::LongValue(2), "b"));

        let err = h.api.get_statement_result().id(&id).send().await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "a batch's own id has no result");
        let err = h.api.describe_statement().id(format!("{id}:4")).send().await.unwrap_err();
        assert!(err.into_service_error().is_resource_not_found_exception());
    });
}

#[test]
fn a_failing_batch_rolls_back_everything() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE items (k int PRIMARY KEY)").await;
        h.ok("INSERT INTO items VALUES (1)").await;
        let done = h
            .batch(&[
                "INSERT INTO items VALUES (2)",
                "INSERT INTO items VALUES (1)",
                "INSERT INTO items VALUES (3)",
            ])
            .await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        let error = done.error().expect("an Error");
        assert!(error.starts_with("ERROR: duplicate key value"), "{error}");
        assert_eq!(
            sub_statuses(&done),
            [StatementStatusString::Finished, StatementStatusString::Failed, StatementStatusString::Aborted]
        );
        assert_eq!(done.sub_statements()[1].error(), Some(error));

        let pg = h.postgres().await;
        let keys: Vec<i32> =
            pg.query("SELECT k FROM items", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(keys, [1], "the batch's first insert was rolled back");

        let too_many = vec!["SELECT 1".to_string(); 41];
        let err = h
            .api
            .batch_execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .set_sqls(Some(too_many))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"));
    });
}

#[test]
fn super_columns_json_parse_and_backslash_literals() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE docs (id int, doc SUPER, note varchar(50))").await;
        // As sluice writes literals: '\\' is one backslash, '' is a quote.
        h.ok(r#"INSERT INTO docs VALUES (1, JSON_PARSE('{"path": "a\\\\b", "q": "it''s", "n": 12345678901234567890123456789012345678}'), 'x\\y''z')"#)
            .await;
        h.ok(
            r#"INSERT INTO docs VALUES (2, JSON_PARSE('"just a string"'), NULL), (3, JSON_PARSE(NULL), 'n')"#,
        )
        .await;

        let id = h
            .submit(
                "SELECT doc, JSON_SERIALIZE(doc), note, LEN(note), doc.path IS NULL FROM docs ORDER BY id",
            )
            .await;
        let done = wait(&h.api, &id).await;
        // PostgreSQL has no `doc.path` navigation: that Redshift form is not emulated.
        assert_eq!(done.status(), Some(&StatusString::Failed));

        let id = h.submit("SELECT doc, JSON_SERIALIZE(doc), note, LEN(note) FROM docs ORDER BY id").await;
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        let rows = h.records(&id).await;
        let doc: serde_json::Value = serde_json::from_str(string(&rows[0][0])).unwrap();
        assert_eq!(doc["path"], "a\\b");
        assert_eq!(doc["q"], "it's");
        assert!(string(&rows[0][0]).contains("12345678901234567890123456789012345678"), "every digit kept");
        assert_eq!(string(&rows[0][1]), string(&rows[0][0]), "JSON_SERIALIZE is compact like the result");
        assert_eq!(string(&rows[0][2]), "x\\y'z");
        assert_eq!(rows[0][3], Field::LongValue(5));
        assert_eq!(string(&rows[1][0]), r#""just a string""#);
        assert_eq!(rows[2][0], Field::IsNull(true));

        let pg = h.postgres().await;
        let row = pg
            .query_one("SELECT doc->>'path', jsonb_typeof(doc), note FROM docs WHERE id = 1", &[])
            .await
            .unwrap();
        assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("a\\b".into(), "object".into()));
        assert_eq!(row.get::<_, String>(2), "x\\y'z");

        let done = h.run("SELECT JSON_PARSE('{not json')").await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert!(
            done.error().unwrap().starts_with("ERROR: invalid input syntax for type json"),
            "{:?}",
            done.error()
        );
        let id = h.submit("SELECT GETDATE() <= GETDATE(), GETDATE()::text NOT LIKE '%.%'").await;
        wait(&h.api, &id).await;
        assert_eq!(h.records(&id).await[0], [Field::BooleanValue(true), Field::BooleanValue(true)]);
    });
}

#[test]
fn named_parameters_are_bound_as_string_literals() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE people (id int, name varchar(40))").await;
        let param = |n: &str, v: &str| SqlParameter::builder().name(n).value(v).build().unwrap();
        let sql = "INSERT INTO people VALUES (:id, :name)";
        let out = h
            .api
            .execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sql(sql)
            .parameters(param("id", "7"))
            .parameters(param("name", "it's a\\b :id"))
            .send()
            .await
            .unwrap();
        let done = wait(&h.api, out.id().unwrap()).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        assert_eq!(done.query_string(), Some(sql), "QueryString is the text as sent");
        assert_eq!(done.query_parameters().len(), 2);
        assert_eq!(h.standin.statements(), ["CREATE TABLE people (id int, name varchar(40))", sql]);

        let out = h
            .api
            .execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sql("SELECT name, :id::int + 1, ':id' FROM people WHERE id = :id")
            .parameters(param("id", "7"))
            .send()
            .await
            .unwrap();
        let id = out.id().unwrap().to_string();
        wait(&h.api, &id).await;
        let rows = h.records(&id).await;
        assert_eq!(string(&rows[0][0]), "it's a\\b :id");
        assert_eq!(rows[0][1], Field::LongValue(8));
        assert_eq!(string(&rows[0][2]), ":id");

        for (sql, params) in [("SELECT :a", vec![]), ("SELECT 1", vec![param("unused", "1")])] {
            let mut request = h.api.execute_statement().workgroup_name(WG).database("dev").sql(sql);
            // Parameters must not be empty on the wire, so :a alone goes with another one.
            request = if params.is_empty() {
                request.parameters(param("b", "1"))
            } else {
                request.set_parameters(Some(params))
            };
            let err = request.send().await.unwrap_err();
            assert_eq!(err.code(), Some("ValidationException"), "{sql}");
        }
    });
}

#[test]
fn unknown_ids_are_not_found_and_bad_requests_are_refused() {
    let h = Harness::new(None);
    block_on(async {
        let unknown = "4a1b2c3d-0000-4000-8000-000000000000";
        let err = h.api.describe_statement().id(unknown).send().await.unwrap_err();
        assert_eq!(err.code(), Some("ResourceNotFoundException"));
        let err = err.into_service_error();
        assert!(err.is_resource_not_found_exception());
        assert!(err.message().unwrap_or_default().contains(unknown), "{err:?}");
        let err = h.api.get_statement_result().id(unknown).send().await.unwrap_err();
        assert!(err.into_service_error().is_resource_not_found_exception());
        let err = h.api.cancel_statement().id(unknown).send().await.unwrap_err();
        assert!(err.into_service_error().is_resource_not_found_exception());
        let err = h.api.describe_statement().id("not-an-id").send().await.unwrap_err();
        assert!(err.into_service_error().is_validation_exception());

        let err = h.api.execute_statement().database("dev").sql("SELECT 1").send().await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "no WorkgroupName or ClusterIdentifier");
    });
}

#[test]
fn throttling_is_injected_and_retried_by_the_sdk() {
    let h = Harness::new(None);
    block_on(async {
        h.standin.throttle_next(1);
        let err =
            h.api.describe_statement().id("4a1b2c3d-0000-4000-8000-000000000000").send().await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Some("ThrottlingException"), Some("Rate exceeded")));

        // With retries, as sluice's client has them, two throttles are absorbed.
        let patient = data_api(&h.standin.endpoint(), 3);
        h.standin.throttle_next(2);
        let out = patient.execute_statement().workgroup_name(WG).database("dev").sql("SELECT 1").send().await;
        let id = out.expect("the third attempt succeeds").id().unwrap().to_string();
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        assert_eq!(h.standin.statements(), ["SELECT 1"], "throttled calls run nothing");
    });
}

#[test]
fn injected_statement_failures_change_nothing() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE t (v int)").await;
        h.standin.fail_next_statements(2, "ERROR: injected failure");
        let done = h.run("INSERT INTO t VALUES (1)").await;
        assert_eq!(
            (done.status(), done.error()),
            (Some(&StatusString::Failed), Some("ERROR: injected failure"))
        );
        let done = h.batch(&["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)"]).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert_eq!(sub_statuses(&done), [StatementStatusString::Failed, StatementStatusString::Aborted]);
        assert_eq!(done.sub_statements()[0].error(), Some("ERROR: injected failure"));
        h.ok("INSERT INTO t VALUES (4)").await;

        let pg = h.postgres().await;
        let values: Vec<i32> =
            pg.query("SELECT v FROM t", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(values, [4]);
    });
}

#[test]
fn cancel_aborts_a_running_statement() {
    let h = Harness::new(None);
    block_on(async {
        let id = h.submit("SELECT pg_sleep(30)").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.api.describe_statement().id(&id).send().await.unwrap().redshift_pid() == 0 {
            assert!(Instant::now() < deadline, "the statement never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = h.api.cancel_statement().id(&id).send().await.unwrap();
        assert_eq!(out.status(), Some(true));
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Aborted));
        let err = h.api.cancel_statement().id(&id).send().await.unwrap_err();
        assert!(err.into_service_error().is_validation_exception(), "it is no longer running");

        // Cancelled at once: waiting or starting, it must not run to its end.
        let started = Instant::now();
        let id = h.submit("SELECT pg_sleep(30)").await;
        h.api.cancel_statement().id(&id).send().await.unwrap();
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Aborted));
        assert!(started.elapsed() < Duration::from_secs(20), "the query ran on after CancelStatement");
    });
}

#[test]
fn client_tokens_make_execute_idempotent() {
    let h = Harness::new(None);
    block_on(async {
        let send = || {
            h.api
                .execute_statement()
                .workgroup_name(WG)
                .database("dev")
                .sql("SELECT 1")
                .client_token("t-1")
                .send()
        };
        let first = send().await.unwrap();
        let second = send().await.unwrap();
        assert_eq!(first.id(), second.id());
        assert_eq!(h.standin.statements().len(), 1);
    });
}

#[test]
fn a_statement_that_cannot_reach_postgres_fails_with_the_reason() {
    let h = Harness::new(None);
    let database = h.url.rsplit('/').next().unwrap().to_string();
    let mut admin = sluice_test_support::postgres::shared().client("postgres");
    admin.batch_execute(&format!("DROP DATABASE \"{database}\" WITH (FORCE)")).unwrap();
    block_on(async {
        let done = h.run("SELECT 1").await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        let error = done.error().unwrap();
        assert!(error.contains("does not exist"), "{error}");
    });
}

/// An S3 client for moto, in `region`.
fn s3_client(endpoint: &str, region: &'static str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(region))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    )
}

/// A bucket name of its own for one test.
fn bucket_name() -> String {
    sluice_test_support::unique_name("standin").to_lowercase().replace('_', "-")
}

/// gzip of `text`.
fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn copy_loads_gzip_json_lines_from_s3() {
    let endpoint = sluice_test_support::moto::shared().endpoint();
    let h = Harness::new(Some(endpoint.clone()));
    let bucket = bucket_name();
    block_on(async {
        let s3 = s3_client(&endpoint, "us-east-1");
        s3.create_bucket().bucket(&bucket).send().await.expect("CreateBucket");
        let put = |key: &'static str, body: Vec<u8>| {
            s3.put_object().bucket(&bucket).key(key).body(body.into()).send()
        };
        let part0 = concat!(
            r#"{"pk": "a", "doc": {"x": [1, {"y": "z"}], "s": "q\"\\"}, "n": 12345678901234567890, "flag": true, "ts": "2024-01-02 03:04:05"}"#,
            "\n",
            r#"{"pk": "b", "doc": "a plain string", "n": "7", "flag": false, "unknown": 1}"#,
            "\n"
        );
        let part1 = r#"{"pk": "c", "doc": [1, 2], "n": null, "Flag": true}"#;
        put("loads/run1/part-0.json.gz", gzip(part0)).await.expect("PutObject");
        put("loads/run1/part-1.json.gz", gzip(part1)).await.expect("PutObject");
        put("loads/run2/part-0.json.gz", gzip(r#"{"pk": "other run"}"#)).await.expect("PutObject");

        h.ok("CREATE TABLE loaded (pk varchar(10), doc super, n numeric(38,0), flag boolean, ts timestamp, note varchar(5) DEFAULT 'dflt')").await;
        let copy = format!(
            "COPY loaded (pk, doc, n, flag, ts)\n  FROM 's3://{bucket}/loads/run1/'\n  IAM_ROLE 'arn:aws:iam::123456789012:role/load'\n  FORMAT AS JSON 'auto' TIMEFORMAT 'auto' GZIP"
        );
        let done = h.ok(&copy).await;
        assert_eq!((done.result_rows(), done.has_result_set()), (3, Some(false)));

        let pg = h.postgres().await;
        let rows = pg
            .query(
                "SELECT pk, jsonb_typeof(doc), doc::text, n::text, flag, ts::text, note FROM loaded ORDER BY pk",
                &[],
            )
            .await
            .unwrap();
        let row = |i: usize| {
            let r = &rows[i];
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, Option<String>>(3),
                r.get::<_, Option<bool>>(4),
                r.get::<_, Option<String>>(5),
                r.get::<_, String>(6),
            )
        };
        assert_eq!(rows.len(), 3);
        let a = row(0);
        assert_eq!(
            (a.1.as_str(), a.3.as_deref(), a.4, a.5.as_deref()),
            ("object", Some("12345678901234567890"), Some(true), Some("2024-01-02 03:04:05"))
        );
        let doc: serde_json::Value = serde_json::from_str(&a.2).unwrap();
        assert_eq!(doc, serde_json::json!({"x": [1, {"y": "z"}], "s": "q\"\\"}));
        assert_eq!(a.6, "dflt", "a column outside the list gets its default");
        let b = row(1);
        assert_eq!(
            (b.1.as_str(), b.2.as_str(), b.3.as_deref(), b.4),
            ("string", r#""a plain string""#, Some("7"), Some(false))
        );
        let c = row(2);
        assert_eq!(
            (c.1.as_str(), c.3, c.4),
            ("array", None, None),
            "JSON 'auto' matches lower-case keys only"
        );

        // In a batch, COPY is part of the transaction.
        let done = h.batch(&[&copy, "INSERT INTO loaded (pk) VALUES ('far too long for ten')"]).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert_eq!(done.sub_statements()[0].result_rows(), 3);
        let count: i64 = pg.query_one("SELECT count(*) FROM loaded", &[]).await.unwrap().get(0);
        assert_eq!(count, 3, "the batch's COPY was rolled back");

        // Without a column list, and without GZIP.
        put("plain/one.json", br#"{"pk": "p", "note": "hi"}"#.to_vec()).await.expect("PutObject");
        let done =
            h.ok(&format!("copy loaded from 's3://{bucket}/plain/' iam_role default json 'auto';")).await;
        assert_eq!(done.result_rows(), 1);
        let note: Option<String> =
            pg.query_one("SELECT note FROM loaded WHERE pk = 'p'", &[]).await.unwrap().get(0);
        assert_eq!(note.as_deref(), Some("hi"));

        let done = h
            .run(&format!(
                "COPY loaded FROM 's3://{bucket}/nothing/here' IAM_ROLE default FORMAT AS JSON 'auto' GZIP"
            ))
            .await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert!(
            done.error().unwrap().contains("The specified S3 prefix 'nothing/here' does not exist"),
            "{:?}",
            done.error()
        );

        let done = h.run(&format!("COPY loaded FROM 's3://{bucket}/plain/' IAM_ROLE default CSV")).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert!(done.error().unwrap().contains("CSV"), "{:?}", done.error());
    });
}

#[test]
fn requests_over_100_kb_of_sql_are_refused() {
    let h = Harness::new(None);
    block_on(async {
        let execute =
            |sql: String| h.api.execute_statement().workgroup_name(WG).database("dev").sql(sql).send();
        // A comment pads the text to the limit, so the statement itself is small.
        let at_limit = format!("SELECT 1 --{}", "x".repeat(100_000 - 11));
        assert_eq!(at_limit.len(), 100_000);
        let id =
            execute(at_limit).await.expect("exactly 100,000 bytes are accepted").id().unwrap().to_string();
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));

        let over = format!("SELECT 1 --{}", "x".repeat(100_000 - 10));
        let err = execute(over).await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"));
        assert!(err.message().unwrap().contains("Cannot process query string larger than 100kB"), "{err:?}");
        // Bytes, not characters: 33,331 three-byte characters are 99,993 + 11 bytes.
        let multibyte = format!("SELECT 1 --{}", "€".repeat(33_331));
        assert_eq!(multibyte.len(), 100_004);
        assert!(execute(multibyte).await.is_err(), "counted in UTF-8 bytes");

        // A batch counts all its texts together.
        let half = format!("SELECT 1 --{}", "x".repeat(50_000 - 11));
        let batch = |sqls: Vec<String>| {
            h.api.batch_execute_statement().workgroup_name(WG).database("dev").set_sqls(Some(sqls)).send()
        };
        let id =
            batch(vec![half.clone(), half.clone()]).await.expect("two halves fit").id().unwrap().to_string();
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        let err = batch(vec![half.clone(), format!("{half}x")]).await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "100,001 bytes over two texts");

        let err = batch(vec!["SELECT 1".to_string(); 41]).await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "41 statements");
        batch(vec!["SELECT 1".to_string(); 40]).await.expect("40 statements");
        let err = batch(Vec::new()).await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "no statement");
    });
}

#[test]
fn batch_parameters_are_bound_into_every_text() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE kv (k varchar(10), v int)").await;
        let param = |n: &str, v: &str| SqlParameter::builder().name(n).value(v).build().unwrap();
        let out = h
            .api
            .batch_execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sqls("INSERT INTO kv VALUES (:k, 1)")
            .sqls("UPDATE kv SET v = :v WHERE k = :k")
            .parameters(param("k", "a"))
            .parameters(param("v", "7"))
            .send()
            .await
            .expect("BatchExecuteStatement with Parameters");
        let done = wait(&h.api, out.id().unwrap()).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        let pg = h.postgres().await;
        let v: i32 = pg.query_one("SELECT v FROM kv WHERE k = 'a'", &[]).await.unwrap().get(0);
        assert_eq!(v, 7);
        let err = h
            .api
            .batch_execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sqls("SELECT 1")
            .parameters(param("unused", "1"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "each parameter must be used");
    });
}

#[test]
fn only_the_data_apis_sign_in_combinations_are_accepted() {
    let h = Harness::new(None);
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice";
    block_on(async {
        struct SignIn {
            cluster: Option<&'static str>,
            workgroup: Option<&'static str>,
            secret: Option<&'static str>,
            db_user: Option<&'static str>,
            database: Option<&'static str>,
        }
        let base =
            || SignIn { cluster: None, workgroup: None, secret: None, db_user: None, database: Some("dev") };
        let cases = [
            ("workgroup + secret", SignIn { workgroup: Some(WG), secret: Some(SECRET), ..base() }, true),
            ("workgroup as the IAM identity", SignIn { workgroup: Some(WG), ..base() }, true),
            (
                "workgroup ARN",
                SignIn {
                    workgroup: Some(
                        "arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/0b6dd1ec-4b02-4e0c-b5a7-2bb6a3a1c0e4",
                    ),
                    ..base()
                },
                true,
            ),
            ("cluster + secret", SignIn { cluster: Some("c1"), secret: Some(SECRET), ..base() }, true),
            ("cluster + db user", SignIn { cluster: Some("c1"), db_user: Some("sluice"), ..base() }, true),
            ("cluster as the IAM identity", SignIn { cluster: Some("c1"), ..base() }, true),
            ("neither", SignIn { ..base() }, false),
            ("both", SignIn { cluster: Some("c1"), workgroup: Some(WG), ..base() }, false),
            (
                "secret and db user",
                SignIn { cluster: Some("c1"), secret: Some(SECRET), db_user: Some("u"), ..base() },
                false,
            ),
            ("db user on a workgroup", SignIn { workgroup: Some(WG), db_user: Some("u"), ..base() }, false),
            ("no database", SignIn { workgroup: Some(WG), database: None, ..base() }, false),
            ("empty database", SignIn { workgroup: Some(WG), database: Some(""), ..base() }, false),
            ("workgroup under 3 characters", SignIn { workgroup: Some("wg"), ..base() }, false),
            ("workgroup in capitals", SignIn { workgroup: Some("Sluice"), ..base() }, false),
            (
                "cluster over 63 characters",
                SignIn {
                    cluster: Some("c123456789c123456789c123456789c123456789c123456789c123456789abcd"),
                    ..base()
                },
                false,
            ),
        ];
        for (what, s, accepted) in cases {
            for batch in [false, true] {
                let result = if batch {
                    h.api
                        .batch_execute_statement()
                        .sqls("SELECT 1")
                        .set_cluster_identifier(s.cluster.map(str::to_string))
                        .set_workgroup_name(s.workgroup.map(str::to_string))
                        .set_secret_arn(s.secret.map(str::to_string))
                        .set_db_user(s.db_user.map(str::to_string))
                        .set_database(s.database.map(str::to_string))
                        .send()
                        .await
                        .map(|o| o.id().unwrap().to_string())
                        .map_err(|e| (e.code().map(str::to_string), e.message().map(str::to_string)))
                } else {
                    h.api
                        .execute_statement()
                        .sql("SELECT 1")
                        .set_cluster_identifier(s.cluster.map(str::to_string))
                        .set_workgroup_name(s.workgroup.map(str::to_string))
                        .set_secret_arn(s.secret.map(str::to_string))
                        .set_db_user(s.db_user.map(str::to_string))
                        .set_database(s.database.map(str::to_string))
                        .send()
                        .await
                        .map(|o| o.id().unwrap().to_string())
                        .map_err(|e| (e.code().map(str::to_string), e.message().map(str::to_string)))
                };
                match result {
                    Ok(_) => assert!(accepted, "{what} (batch {batch}) was accepted"),
                    Err((code, message)) => {
                        assert!(!accepted, "{what} (batch {batch}) was refused: {message:?}");
                        assert_eq!(code.as_deref(), Some("ValidationException"), "{what}: {message:?}");
                    }
                }
            }
        }
        let err = h.api.execute_statement().database("dev").sql("SELECT 1").send().await.unwrap_err();
        assert_eq!(err.message(), Some("Either ClusterIdentifier or WorkgroupName needs to be specified."));
    });
}

#[test]
fn varchar_and_char_widths_are_bytes() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE w (v VARCHAR(2), d VARCHAR, t TEXT, c CHAR(2))").await;
        h.ok("INSERT INTO w (v) VALUES ('ab')").await;
        h.ok("INSERT INTO w (v) VALUES ('é')").await;
        let error = h.fails("INSERT INTO w (v) VALUES ('€')").await;
        assert_eq!(error, "ERROR: value too long for type character varying(2)");
        let error = h.fails("INSERT INTO w (v) VALUES ('abc')").await;
        assert!(error.contains("value too long"), "{error}");
        let error = h.fails("UPDATE w SET v = 'éa'").await;
        assert!(error.contains("value too long for type character varying(2)"), "{error}");

        // VARCHAR and TEXT without a length are VARCHAR(256).
        h.ok(&format!("INSERT INTO w (d, t) VALUES ('{0}', '{0}')", "x".repeat(256))).await;
        let error = h.fails(&format!("INSERT INTO w (d) VALUES ('{}')", "x".repeat(257))).await;
        assert!(error.contains("character varying(256)"), "{error}");
        let error = h.fails(&format!("INSERT INTO w (t) VALUES ('{}')", "é".repeat(129))).await;
        assert!(error.contains("character varying(256)"), "{error}");

        // A CHAR holds single-byte characters only.
        h.ok("INSERT INTO w (c) VALUES ('ab')").await;
        let error = h.fails("INSERT INTO w (c) VALUES ('é')").await;
        assert!(error.contains("Multibyte character not supported for CHAR"), "{error}");

        // A temporary copy of the table keeps the widths.
        let done =
            h.batch(&["CREATE TEMP TABLE w_stage (LIKE w)", "INSERT INTO w_stage (v) VALUES ('€')"]).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert!(done.error().unwrap().contains("character varying(2)"), "{:?}", done.error());
        let done =
            h.batch(&["CREATE TEMP TABLE w_stage (LIKE w)", "INSERT INTO w_stage (v) VALUES ('ab')"]).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());

        // ALTER TABLE ADD COLUMN, and the widest VARCHAR.
        h.ok("ALTER TABLE w ADD COLUMN x VARCHAR(1)").await;
        let error = h.fails("INSERT INTO w (x) VALUES ('é')").await;
        assert!(error.contains("character varying(1)"), "{error}");
        h.ok("CREATE TABLE widest (v VARCHAR(MAX), n VARCHAR(65535))").await;
        let error = h.fails("CREATE TABLE too_wide (v VARCHAR(65536))").await;
        assert!(error.contains("cannot exceed 65535"), "{error}");

        let id = h.submit("SELECT v, d, c FROM w WHERE v = 'ab'").await;
        wait(&h.api, &id).await;
        let out = h.api.get_statement_result().id(&id).send().await.unwrap();
        let meta = out.column_metadata();
        let types: Vec<_> = meta.iter().map(|m| (m.type_name().unwrap(), m.precision())).collect();
        assert_eq!(types, [("varchar", 2), ("varchar", 256), ("bpchar", 2)]);
    });
}

#[test]
fn varbyte_round_trips_within_its_width() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE b (v VARBYTE(16777216), w VARBINARY(3), d VARBYTE)").await;
        h.ok("INSERT INTO b (v, w) VALUES (FROM_HEX('6162') || FROM_HEX('63'), FROM_HEX('616263'))").await;
        let id = h
            .submit(
                "SELECT v, TO_HEX(v), LEN(v), OCTET_LENGTH(v), FROM_VARBYTE(v, 'utf8'), \
                 JSON_SERIALIZE(JSON_PARSE(FROM_HEX('7b2261') || FROM_HEX('223a317d'))) FROM b",
            )
            .await;
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        let out = h.api.get_statement_result().id(&id).send().await.unwrap();
        let row = &out.records()[0];
        assert_eq!(string(&row[0]), "616263", "VARBYTE prints as hex");
        assert_eq!(string(&row[1]), "616263");
        assert_eq!((&row[2], &row[3]), (&Field::LongValue(3), &Field::LongValue(3)));
        assert_eq!(string(&row[4]), "abc");
        assert_eq!(string(&row[5]), r#"{"a":1}"#);
        let meta = out.column_metadata();
        assert_eq!((meta[0].type_name(), meta[0].precision()), (Some("varbyte"), 16_777_216));

        let error = h.fails("INSERT INTO b (w) VALUES (FROM_HEX('61626364'))").await;
        assert_eq!(error, "ERROR: value too long for type binary varying(3)");
        let error = h.fails("INSERT INTO b (d) VALUES (FROM_HEX(REPEAT('61', 64001)))").await;
        assert!(error.contains("binary varying(64000)"), "VARBYTE defaults to 64,000 bytes: {error}");
        assert!(h.fails("SELECT FROM_VARBYTE(v, 'base64') FROM b").await.contains("does not emulate"));
        assert!(h.fails("SELECT FROM_HEX('61 62')").await.contains("not hexadecimal"));
        assert!(h.fails("SELECT 'abc'::varbyte").await.contains("does not exist"), "casts are not emulated");
        let error = h.fails("CREATE TABLE too_wide (v VARBYTE(16777217))").await;
        assert!(error.contains("cannot exceed 16777216"), "{error}");

        // JSON longer than a VARCHAR goes through VARBYTE, built up in pieces.
        let json = format!(r#"["{}","{}","{}"]"#, "a".repeat(30_000), "b".repeat(30_000), "c".repeat(30_000));
        let hex: String = json.bytes().map(|b| format!("{b:02x}")).collect();
        let pieces: Vec<&str> =
            hex.as_bytes().chunks(60_000).map(|c| std::str::from_utf8(c).unwrap()).collect();
        h.ok("CREATE TABLE stage (v VARBYTE(16777216))").await;
        h.ok(&format!("INSERT INTO stage VALUES (FROM_HEX('{}'))", pieces[0])).await;
        for piece in &pieces[1..] {
            h.ok(&format!("UPDATE stage SET v = v || FROM_HEX('{piece}')")).await;
        }
        let id = h
            .submit("SELECT LEN(v), JSON_SIZE(JSON_PARSE(v)), LEN(JSON_SERIALIZE_TO_VARBYTE(JSON_PARSE(v))) FROM stage")
            .await;
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        let size = json.len() as i64;
        assert_eq!(
            h.records(&id).await[0],
            [Field::LongValue(size), Field::LongValue(size), Field::LongValue(size)]
        );
        let error = h.fails("SELECT JSON_SERIALIZE(JSON_PARSE(v)) FROM stage").await;
        assert!(error.contains("JSON_SERIALIZE"), "over a VARCHAR: {error}");
        let error = h.fails("SELECT JSON_PARSE(FROM_VARBYTE(v, 'utf8')) FROM stage").await;
        assert!(error.contains("FROM_VARBYTE"), "over a VARCHAR: {error}");
    });
}

/// `FROM_HEX(...)` of `"` + `n` times `x` + `"`: a JSON string of n bytes.
fn json_string_of(n: usize) -> String {
    format!("FROM_HEX('22') || FROM_HEX(REPEAT('78', {n})) || FROM_HEX('22')")
}

#[test]
fn super_values_keep_redshifts_limits() {
    let h = Harness::new(None);
    block_on(async {
        // Strings in SUPER: 65,535 bytes, values and member names alike.
        let id = h.submit(&format!("SELECT JSON_SIZE(JSON_PARSE({}))", json_string_of(65_535))).await;
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{:?}", done.error());
        assert_eq!(h.records(&id).await[0], [Field::LongValue(65_537)]);
        let error = h.fails(&format!("SELECT JSON_PARSE({})", json_string_of(65_536))).await;
        assert!(error.contains("a string in the SUPER value is 65536 bytes"), "{error}");
        let member =
            format!("SELECT JSON_PARSE(FROM_HEX('7b') || {} || FROM_HEX('3a317d'))", json_string_of(65_536));
        assert!(h.fails(&member).await.contains("member name"));
        // JSON_PARSE's VARCHAR argument is a VARCHAR.
        let literal = format!(r#"SELECT JSON_PARSE('["{}"]')"#, "x".repeat(65_532));
        assert!(h.fails(&literal).await.contains("VARCHAR argument is 65536 bytes"));
        // Into a column, however it gets there.
        h.ok("CREATE TABLE docs (d SUPER)").await;
        let error = h.fails(&format!("INSERT INTO docs SELECT JSON_PARSE({})", json_string_of(65_536))).await;
        assert!(error.contains("65536 bytes"), "{error}");
        assert!(
            h.fails("INSERT INTO docs SELECT JSON_PARSE(REPEAT('[', 1001) || REPEAT(']', 1001))")
                .await
                .contains("1000")
        );
        h.ok("INSERT INTO docs SELECT JSON_PARSE(REPEAT('[', 1000) || REPEAT(']', 1000))").await;

        // 16 MB a value: 250 strings of 64,000 bytes are 16,000,751 bytes of JSON.
        let string = "'22' || REPEAT('78', 64000) || '22'";
        let big = format!(
            "FROM_HEX('5b') || FROM_HEX(REPEAT({string} || '2c', 249)) || FROM_HEX({string} || '5d')"
        );
        let error = h.fails(&format!("SELECT JSON_SIZE(JSON_PARSE({big}))")).await;
        assert!(error.contains("16 MB"), "{error}");
        let fits = big.replace("249", "248");
        let id = h.submit(&format!("SELECT JSON_SIZE(JSON_PARSE({fits}))")).await;
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        assert_eq!(h.records(&id).await[0], [Field::LongValue(249 * 64_003 + 1)]);

        // JSON_SERIALIZE returns a VARCHAR.
        let array = "FROM_HEX('5b') || FROM_HEX(REPEAT('312c', 40000)) || FROM_HEX('315d')";
        let error = h.fails(&format!("SELECT JSON_SERIALIZE(JSON_PARSE({array}))")).await;
        assert!(error.contains("JSON_SERIALIZE"), "{error}");
    });
}

#[test]
fn a_cluster_may_raise_the_super_string_limit() {
    let h = Harness::with(Config { super_max_string_bytes: 16_000_000, ..Config::default() });
    block_on(async {
        let id = h.submit(&format!("SELECT JSON_SIZE(JSON_PARSE({}))", json_string_of(65_536))).await;
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        let literal = format!(r#"SELECT JSON_SIZE(JSON_PARSE('["{}"]'))"#, "x".repeat(70_000));
        let id = h.submit(&literal).await;
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
    });
    let url = sluice_test_support::postgres::shared().fresh_database("standin");
    let refused =
        StandIn::start(Config { postgres_url: url, super_max_string_bytes: 16_000_001, ..Config::default() });
    assert!(refused.is_err(), "Redshift allows at most 16,000,000 bytes");
}

#[test]
fn a_result_row_over_64_kb_fails_the_statement() {
    let h = Harness::new(None);
    block_on(async {
        let id = h.submit("SELECT REPEAT('x', 64000)").await;
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        let id = h.submit("SELECT REPEAT('x', 32000), REPEAT('y', 32001)").await;
        let done = wait(&h.api, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        assert!(done.error().unwrap().starts_with("Packet for query is too large"), "{:?}", done.error());
        let err = h.api.get_statement_result().id(&id).send().await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationException"), "no result to fetch");

        // In a batch, it rolls back what came before.
        h.ok("CREATE TABLE t (v int)").await;
        let done = h.batch(&["INSERT INTO t VALUES (1)", "SELECT REPEAT('x', 70000)"]).await;
        assert_eq!(done.status(), Some(&StatusString::Failed));
        let pg = h.postgres().await;
        let count: i64 = pg.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
        assert_eq!(count, 0);
    });
}

#[test]
fn identifiers_over_63_bytes_are_refused() {
    let h = Harness::new(None);
    block_on(async {
        h.ok(&format!("CREATE TABLE {} (v int)", "t".repeat(63))).await;
        let error = h.fails(&format!("CREATE TABLE {} (v int)", "t".repeat(64))).await;
        assert!(error.contains("127 bytes") && error.contains("63"), "{error}");
        let error = h.fails(&format!("SELECT 1 AS \"{}\"", "é".repeat(32))).await;
        assert!(error.contains("64 bytes"), "quoted names count bytes: {error}");
        h.ok(&format!("SELECT '{}'", "t".repeat(100))).await;
    });
}

#[test]
fn copy_needs_region_for_a_bucket_in_another_region() {
    let endpoint = sluice_test_support::moto::shared().endpoint();
    let h = Harness::new(Some(endpoint.clone()));
    let bucket = bucket_name();
    block_on(async {
        let s3 = s3_client(&endpoint, "eu-west-1");
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
            .build();
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(location)
            .send()
            .await
            .expect("CreateBucket");
        let put = |key: &'static str, body: String| {
            s3.put_object().bucket(&bucket).key(key).body(body.into_bytes().into()).send()
        };
        put("eu/part-0.json", r#"{"pk": "a"}"#.to_string()).await.expect("PutObject");
        h.ok("CREATE TABLE loaded (pk varchar(10), doc super, b varbyte)").await;

        let copy =
            format!("COPY loaded (pk) FROM 's3://{bucket}/eu/' IAM_ROLE default FORMAT AS JSON 'auto'");
        let error = h.fails(&copy).await;
        assert!(error.contains("must be addressed using the specified endpoint"), "{error}");
        let error = h.fails(&format!("{copy} REGION 'us-west-2'")).await;
        assert!(error.contains("must be addressed using the specified endpoint"), "{error}");
        let done = h.ok(&format!("{copy} REGION AS 'eu-west-1'")).await;
        assert_eq!(done.result_rows(), 1);

        // A COPY into a VARBYTE column is not emulated.
        let error = h
            .fails(&format!(
                "COPY loaded FROM 's3://{bucket}/eu/' IAM_ROLE default JSON 'auto' REGION 'eu-west-1'"
            ))
            .await;
        assert!(error.contains("VARBYTE column b"), "{error}");

        // The limits of COPY's JSON and of SUPER.
        put("big/part-0.json", format!(r#"{{"pk": "b", "pad": "{}"}}"#, "x".repeat(4_000_000)))
            .await
            .unwrap();
        let error = h
            .fails(&format!(
                "COPY loaded (pk) FROM 's3://{bucket}/big/' IAM_ROLE default JSON 'auto' REGION 'eu-west-1'"
            ))
            .await;
        assert!(error.contains("4 MB"), "{error}");
        put("long/part-0.json", format!(r#"{{"pk": "c", "doc": {{"s": "{}"}}}}"#, "x".repeat(65_536)))
            .await
            .unwrap();
        let error = h.fails(&format!("COPY loaded (pk, doc) FROM 's3://{bucket}/long/' IAM_ROLE default JSON 'auto' REGION 'eu-west-1'")).await;
        assert!(error.contains("strings in SUPER hold at most 65535 bytes"), "{error}");
        put("wide/part-0.json", r#"{"pk": "0123456789€"}"#.to_string()).await.unwrap();
        let error = h
            .fails(&format!(
                "COPY loaded (pk) FROM 's3://{bucket}/wide/' IAM_ROLE default JSON 'auto' REGION 'eu-west-1'"
            ))
            .await;
        assert!(error.contains("character varying(10)"), "{error}");
    });
    // A cluster in the bucket's Region needs no REGION.
    let h = Harness::with(Config {
        s3_endpoint: Some(endpoint),
        region: "eu-west-1".into(),
        ..Config::default()
    });
    block_on(async {
        h.ok("CREATE TABLE loaded (pk varchar(10))").await;
        let done = h
            .ok(&format!("COPY loaded FROM 's3://{bucket}/eu/' IAM_ROLE default FORMAT AS JSON 'auto'"))
            .await;
        assert_eq!(done.result_rows(), 1);
    });
}

#[test]
fn injected_call_faults_answer_with_the_services_errors() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE t (v int)").await;
        let execute = || {
            h.api
                .execute_statement()
                .workgroup_name(WG)
                .database("dev")
                .sql("INSERT INTO t VALUES (1)")
                .send()
        };

        // ExecuteStatementException: the statement exists, FAILED, and nothing ran.
        h.standin.fail_next_calls(1, CallFault::ExecuteStatementException);
        let err = execute().await.unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
        let aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError::ExecuteStatementException(e) =
            err.into_service_error()
        else {
            panic!("not an ExecuteStatementException");
        };
        let failed = h.api.describe_statement().id(e.statement_id()).send().await.unwrap();
        assert_eq!(failed.status(), Some(&StatusString::Failed));
        assert_eq!(failed.query_string(), Some("INSERT INTO t VALUES (1)"));

        h.standin.fail_next_calls(1, CallFault::BatchExecuteStatementException);
        let err = h
            .api
            .batch_execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sqls("INSERT INTO t VALUES (2)")
            .send()
            .await
            .unwrap_err();
        let aws_sdk_redshiftdata::operation::batch_execute_statement::BatchExecuteStatementError::BatchExecuteStatementException(e) =
            err.into_service_error()
        else {
            panic!("not a BatchExecuteStatementException");
        };
        let failed = h.api.describe_statement().id(e.statement_id()).send().await.unwrap();
        assert_eq!(failed.status(), Some(&StatusString::Failed));

        for (fault, code, status) in [
            (CallFault::DatabaseConnectionException, "DatabaseConnectionException", 500),
            (CallFault::InternalServerException, "InternalServerException", 500),
            (CallFault::ThrottlingException, "ThrottlingException", 400),
            (CallFault::ActiveStatementsExceededException, "ActiveStatementsExceededException", 400),
        ] {
            h.standin.fail_next_calls(1, fault);
            let err = execute().await.unwrap_err();
            assert_eq!(err.code(), Some(code));
            assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(status), "{code}");
        }
        // Describing a statement is not a statement call.
        h.standin.fail_next_calls(1, CallFault::InternalServerException);
        h.api
            .describe_statement()
            .id(e.statement_id())
            .send()
            .await
            .expect("DescribeStatement is not affected");
        h.standin.fail_next_calls(0, CallFault::InternalServerException);

        // The SDK retries the 500s and throttling; a retried call runs once.
        let patient = data_api(&h.standin.endpoint(), 3);
        for fault in [
            CallFault::ExecuteStatementException,
            CallFault::DatabaseConnectionException,
            CallFault::ThrottlingException,
        ] {
            h.standin.fail_next_calls(2, fault);
            let out = patient
                .execute_statement()
                .workgroup_name(WG)
                .database("dev")
                .sql("INSERT INTO t VALUES (3)")
                .send();
            let id = out.await.expect("the third attempt succeeds").id().unwrap().to_string();
            assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        }
        let pg = h.postgres().await;
        let values: Vec<i32> =
            pg.query("SELECT v FROM t", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(values, [3, 3, 3], "failed calls committed nothing, retries ran once each");
    });
}

#[test]
fn a_lost_response_is_retried_with_the_same_client_token() {
    let h = Harness::new(None);
    block_on(async {
        h.ok("CREATE TABLE t (v int)").await;
        let patient = data_api(&h.standin.endpoint(), 3);
        h.standin.lose_next_responses(2);
        let out = patient
            .execute_statement()
            .workgroup_name(WG)
            .database("dev")
            .sql("INSERT INTO t VALUES (1)")
            .send()
            .await
            .expect("the SDK retries a lost response");
        let done = wait(&h.api, out.id().unwrap()).await;
        assert_eq!(done.status(), Some(&StatusString::Finished));
        let pg = h.postgres().await;
        let count = || async { pg.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get::<_, i64>(0) };
        assert_eq!(count().await, 1, "accepted once, run once");
        assert_eq!(h.standin.statements().iter().filter(|s| s.starts_with("INSERT")).count(), 1);

        // Without retries the caller sees the 500, yet the statement ran; sending
        // the same token again returns its Id.
        h.standin.lose_next_responses(1);
        let send = || {
            h.api
                .batch_execute_statement()
                .workgroup_name(WG)
                .database("dev")
                .sqls("INSERT INTO t VALUES (2)")
                .client_token("lost-1")
                .send()
        };
        let err = send().await.unwrap_err();
        assert_eq!(err.code(), Some("InternalServerException"));
        let id = send().await.expect("the same token").id().unwrap().to_string();
        assert_eq!(wait(&h.api, &id).await.status(), Some(&StatusString::Finished));
        assert_eq!(count().await, 2);
        assert_eq!(h.standin.statements().iter().filter(|s| s.starts_with("INSERT")).count(), 2);
    });
}
