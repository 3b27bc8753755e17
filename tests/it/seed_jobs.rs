//! The manifests in `pipelines/` for the seed's jobs, run end to end against
//! the local stand-ins: kinesis-local, moto (S3, STS) and the Redshift Data
//! API stand-in on PostgreSQL. Only the resource names are swapped for
//! local ones; everything else is the shipped manifest.

use std::path::Path;

use redshift_standin::{Config, StandIn};
use serde_json::{Value, json};
use sluice_test_support::{moto, postgres, unique_name};

use crate::export::Export;
use crate::kinesis::{Stream, sluice_k};
use crate::util::{runtime, s3, scratch};

const DOCS: [&str; 3] =
    [r#"{"doc":0,"tags":["a"]}"#, r#"{"doc":1,"price":12.50}"#, r#"{"doc":2,"nested":{"x":null}}"#];

/// Local stand-ins for every resource the shipped manifests name.
struct Local {
    url: String,
    standin: StandIn,
    stream: Stream,
    buckets: [String; 4],
}

impl Local {
    fn new() -> Self {
        let url = postgres::shared().fresh_database("seedjobs");
        let standin = StandIn::start(Config {
            postgres_url: url.clone(),
            s3_endpoint: Some(moto::shared().endpoint()),
            ..Config::default()
        })
        .unwrap();
        let (s3, rt) = (s3(), runtime());
        let buckets = ["docs", "stage", "lake", "spare"].map(|b| unique_name(b).replace('_', "-"));
        for b in &buckets {
            rt.block_on(s3.create_bucket().bucket(b).send()).unwrap();
        }
        for (i, doc) in DOCS.iter().enumerate() {
            let put = s3
                .put_object()
                .bucket(&buckets[0])
                .key(format!("docs/d{i}.json"))
                .body(doc.as_bytes().to_vec().into());
            rt.block_on(put.send()).unwrap();
        }
        Local { url, standin, stream: Stream::new(1), buckets }
    }

    /// Items of the seed's `streamer` table, each naming a document.
    fn items(&self) -> Vec<Value> {
        (0..12)
            .map(|i| {
                json!({ "column1": { "S": format!("{}", 3120 + i) }, "qty": { "N": format!("{i}") },
                        "s3_uri": { "S": format!("s3://{}/docs/d{}.json", self.buckets[0], i % 3) } })
            })
            .collect()
    }

    fn stream_records(&self) -> Vec<String> {
        self.items()
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                json!({ "eventID": format!("e{i}"), "eventName": "INSERT", "tableName": "streamer",
                        "eventSource": "aws:dynamodb",
                        "dynamodb": { "ApproximateCreationDateTime": 1_767_225_600_000u64 + i as u64,
                                      "Keys": { "column1": item["column1"] }, "NewImage": item } })
                .to_string()
            })
            .collect()
    }

    /// The shipped manifest with local resource names, written to `dir`.
    fn manifest(&self, dir: &Path, name: &str, export_path: Option<&str>) -> std::path::PathBuf {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../pipelines/{name}.toml"));
        let mut text = std::fs::read_to_string(shipped).unwrap();
        text = text
            .replace("arn:aws:kinesis:us-east-1:123456789012:stream/ddb_stream", &self.stream.arn)
            .replace("s3://my-join-documents/docs/", &format!("s3://{}/docs/", self.buckets[0]))
            .replace("s3://my-sluice-staging/redshift/", &format!("s3://{}/redshift/", self.buckets[1]))
            .replace("s3://my-cdc-lake/ddb/", &format!("s3://{}/ddb/", self.buckets[2]));
        if let Some(path) = export_path {
            text = text.replace("s3://my-ddb-exports/streamer/AWSDynamoDB/01767225600000-abcdef12/", path);
        }
        let manifest = dir.join(format!("{name}.toml"));
        std::fs::write(&manifest, text).unwrap();
        manifest
    }

    fn run(&self, manifest: &Path) -> String {
        let out = sluice_k()
            .arg("run")
            .arg(manifest)
            .arg("--exit-when-caught-up")
            .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", self.standin.endpoint())
            .env("AWS_ENDPOINT_URL_S3", moto::shared().endpoint())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{}: {stderr}", manifest.display());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (keys, raw_s3_payload as text) of `demo.data`.
    fn rows(&self) -> Vec<(String, Option<String>)> {
        let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
        let has_join = client
            .query_one(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'demo' AND table_name = 'data' \
                 AND column_name = 'raw_s3_payload'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0;
        let payload = if has_join { "raw_s3_payload::text" } else { "NULL::text" };
        let sql = format!("SELECT keys, {payload} FROM demo.data ORDER BY keys");
        client.query(&sql, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    fn drop_table(&self) {
        let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
        client.batch_execute("DROP SCHEMA IF EXISTS demo CASCADE").unwrap();
    }
}

fn assert_joined(rows: &[(String, Option<String>)]) {
    assert_eq!(rows.len(), 12, "{rows:?}");
    for (key, payload) in rows {
        let n: u32 =
            serde_json::from_str::<Value>(key).unwrap()["column1"].as_str().unwrap().parse().unwrap();
        let want: Value = serde_json::from_str(DOCS[(n - 3120) as usize % 3]).unwrap();
        let have: Value = serde_json::from_str(payload.as_deref().expect("joined")).unwrap();
        assert_eq!(have, want, "{key}");
    }
}

#[test]
fn the_seed_jobs_run_end_to_end_on_the_local_stand_ins() {
    let local = Local::new();
    let dir = scratch();
    local.stream.put(&local.stream_records());
    let lines: Vec<String> =
        local.items().into_iter().map(|item| json!({ "Item": item }).to_string()).collect();
    let export = Export::new(&lines, 2, 1_800_000_000_000_000, false).upload();

    // ddb_to_redshift: the stream into Redshift.
    local.run(&local.manifest(dir.path(), "redshift", None));
    assert_eq!(local.rows().len(), 12);
    local.drop_table();

    // ddb_to_redshift_s3_join: the stream, joined.
    local.run(&local.manifest(dir.path(), "redshift-s3-join", None));
    assert_joined(&local.rows());
    local.drop_table();

    // ddb_to_redshift_batch: the export.
    local.run(&local.manifest(dir.path(), "redshift-batch", Some(&export)));
    assert_eq!(local.rows().len(), 12);
    local.drop_table();

    // ddb_to_redshift_batch_s3_join: the export, joined.
    local.run(&local.manifest(dir.path(), "redshift-batch-s3-join", Some(&export)));
    assert_joined(&local.rows());

    // OutputMode = S3: the stream as JSON lines.
    local.run(&local.manifest(dir.path(), "s3-output", None));
    let listed = runtime().block_on(s3().list_objects_v2().bucket(&local.buckets[2]).send()).unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.iter().any(|k| k.starts_with("ddb/data/date=") && k.ends_with(".jsonl.gz")), "{keys:?}");
    assert!(keys.contains(&"ddb/_sluice/checkpoints/s3-output.json"), "{keys:?}");
}
