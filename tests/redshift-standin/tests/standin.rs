//! The stand-in driven by the real AWS SDK client, as sluice drives
//! Redshift, against a real PostgreSQL (and moto for COPY's S3). A missing
//! server fails the test with the reason; nothing is skipped.

use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatementStatusString, StatusString};
use redshift_standin::{Config, StandIn};

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
        let url = sluice_test_support::postgres::shared().fresh_database("standin");
        let standin =
            StandIn::start(Config { postgres_url: url.clone(), s3_endpoint }).expect("starting the stand-in");
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

    async fn submit(&self, sql: &str) -> String {
        let out = self
            .api
            .execute_statement()
            .workgroup_name("wg")
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
        assert_eq!((done.database(), done.workgroup_name()), (Some("dev"), Some("wg")));

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
                "text",
                "timestamp",
                "super",
                "int4"
            ]
        );
        assert_eq!((meta[4].precision(), meta[4].scale()), (12, 3));
        assert_eq!(meta[6].precision(), 20);
        assert_eq!(meta[6].column_default(), Some("'x'::character varying"));
        assert_eq!((meta[1].nullable(), meta[0].nullable()), (0, 1));
        assert_eq!((meta[1].table_name(), meta[1].schema_name()), (Some("kinds"), Some("public")));
        assert_eq!((meta[10].name(), meta[10].table_name()), (Some("doubled"), Some("")));
        assert!(meta[1].is_signed() && !meta[7].is_signed() && meta[7].is_case_sensitive());
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
            .workgroup_name("wg")
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
            .workgroup_name("wg")
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
            .workgroup_name("wg")
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
            .workgroup_name("wg")
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
            let mut request = h.api.execute_statement().workgroup_name("wg").database("dev").sql(sql);
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
        let out =
            patient.execute_statement().workgroup_name("wg").database("dev").sql("SELECT 1").send().await;
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
                .workgroup_name("wg")
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
    let bucket = sluice_test_support::unique_name("standin").to_lowercase().replace('_', "-");
    block_on(async {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "AKID", "secret", None, None, "test",
                ))
                .endpoint_url(&endpoint)
                .force_path_style(true)
                .build(),
        );
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
