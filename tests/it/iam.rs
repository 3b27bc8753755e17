//! `sluice iam-policy` allows every AWS call a run makes: each pipeline
//! below runs against the local stand-ins with every call logged (`aws.rs`
//! logs each operation at debug), and each call's IAM action must be in the
//! policy printed for the manifest (the runner's, or a role's it names).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::export::{Export, sluice_s3};
use crate::join::{TABLE, documents, items, join_section};
use crate::kinesis::{Stream, sluice_k};
use crate::redshift::Warehouse;
use crate::util::{pipeline_into, run_ok, runtime, s3, scratch};
use sluice::generator::{self, GenOptions, Precision};
use sluice_test_support::{moto, unique_name};

/// The IAM action an SDK operation needs (the Service Authorization
/// Reference's "Actions" tables), as `prefix:Action`.
fn action(service: &str, operation: &str) -> String {
    let prefix = match service.to_ascii_lowercase().replace(' ', "").as_str() {
        "s3" => "s3",
        "kinesis" => "kinesis",
        "redshiftdata" => "redshift-data",
        "sts" => "sts",
        "dynamodb" => "dynamodb",
        other => panic!("a call to an unknown service {other:?}"),
    };
    let action = match (prefix, operation) {
        ("s3", "ListObjectsV2") => "ListBucket",
        ("s3", "HeadObject") => "GetObject",
        ("s3", "DeleteObjects") => "DeleteObject",
        (_, op) => op,
    };
    format!("{prefix}:{action}")
}

/// Runs `cmd` with every AWS call logged; returns the actions they need.
fn calls(cmd: &mut Command) -> BTreeSet<String> {
    let out = run_ok(logging_calls(cmd));
    actions_of(&String::from_utf8_lossy(&out.stderr))
}

fn logging_calls(cmd: &mut Command) -> &mut Command {
    cmd.arg("--log-format").arg("json").env("SLUICE_LOG", "warn,sluice::aws=debug")
}

/// The actions the calls logged in `stderr` need.
fn actions_of(stderr: &str) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["fields"]["message"] == "aws call" {
            let (service, op) =
                (v["fields"]["service"].as_str().unwrap(), v["fields"]["operation"].as_str().unwrap());
            actions.insert(action(service, op));
        }
    }
    assert!(!actions.is_empty(), "no AWS call was logged");
    actions
}

/// The actions the printed policies allow: the runner's and each role's.
fn allowed(manifest: &Path) -> BTreeSet<String> {
    let policy = |args: &[&str]| -> Value {
        let out = run_ok(crate::util::sluice().arg("iam-policy").arg(manifest).args(args));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let runner = policy(&[]);
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut documents = vec![runner];
    for key in ["role_arn", "iam_role"] {
        if let Some(line) = text.lines().find(|l| l.starts_with(key)) {
            let arn = line.split('"').nth(1).unwrap();
            documents.push(policy(&["--role", arn]));
        }
    }
    let mut actions = BTreeSet::new();
    for d in documents {
        assert_eq!(d["Version"], json!("2012-10-17"));
        for s in d["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            assert!(!s["Resource"].as_array().unwrap().is_empty());
            for a in s["Action"].as_array().unwrap() {
                actions.insert(a.as_str().unwrap().to_owned());
            }
        }
    }
    actions
}

fn assert_covered(made: &BTreeSet<String>, manifest: &Path) {
    let allowed = allowed(manifest);
    let missing: Vec<&String> = made.difference(&allowed).collect();
    assert!(missing.is_empty(), "calls the policy does not allow: {missing:?} (allowed {allowed:?})");
}

#[test]
fn an_export_in_s3_joined_with_s3_documents_into_the_s3_sink() {
    let docs = documents();
    let lines: Vec<String> =
        items(&docs).into_iter().map(|(_, item)| json!({ "Item": item }).to_string()).collect();
    let export = Export::new(&lines, 2, 1_800_000_000_000_000, false).upload();
    let out = unique_name("lake").replace('_', "-");
    runtime().block_on(s3().create_bucket().bucket(&out).send()).unwrap();
    let dir = scratch();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"iam\"\n[source]\ntype = \"export\"\npath = \"{export}\"\ntable = \"docs_items\"\n\
             [sink]\ntype = \"s3\"\npath = \"s3://{out}/cdc/\"\n{TABLE}{}",
            join_section(&docs)
        ),
    )
    .unwrap();
    let made = calls(sluice_s3().arg("run").arg(&manifest));
    for expected in ["s3:GetObject", "s3:PutObject", "s3:ListBucket"] {
        assert!(made.contains(expected), "{made:?}");
    }
    assert_covered(&made, &manifest);
}

/// A two-shard stream holding 200 changes to `orders`.
fn orders_on_a_stream(seed: u64) -> Stream {
    let stream = Stream::new(2);
    let g = generator::generate(&GenOptions {
        changes: 200,
        seed,
        precision: Precision::Microsecond,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    stream.put(&g.records);
    stream
}

#[test]
fn a_stream_read_through_a_role_and_a_consumer() {
    let stream = orders_on_a_stream(91);
    let dir = scratch();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"iam\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{}\"\n\
             role_arn = \"arn:aws:iam::123456789012:role/reader\"\nconsumer = \"sluice-iam\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n",
            stream.arn
        ),
    )
    .unwrap();
    let made = calls(sluice_k().arg("run").arg(&manifest).arg("--exit-when-caught-up"));
    for expected in ["sts:AssumeRole", "kinesis:ListShards", "kinesis:SubscribeToShard"] {
        assert!(made.contains(expected), "{made:?}");
    }
    assert_covered(&made, &manifest);
}

/// A coordinated worker runs until stopped: it reads the stream into the
/// sink, then SIGTERM gives its leases back.
#[test]
fn a_worker_sharing_a_stream_through_a_lease_table() {
    let stream = orders_on_a_stream(93);
    let dir = scratch();
    let manifest = dir.path().join("m.toml");
    let table = unique_name("leases");
    std::fs::write(
        &manifest,
        format!(
            "name = \"iam\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{}\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n\
             [coordination]\ntype = \"dynamodb\"\ntable = \"{table}\"\n\
             [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n",
            stream.arn
        ),
    )
    .unwrap();
    let mut cmd = sluice_k();
    cmd.env("AWS_ENDPOINT_URL_DYNAMODB", moto::dynamodb().endpoint()).arg("run").arg(&manifest);
    logging_calls(&mut cmd).stdout(Stdio::null()).stderr(Stdio::piped());
    // Spawned to die with the test process, should an assertion fail first.
    let worker = sluice_test_support::spawn(cmd).unwrap();
    let db = dir.path().join("out.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.exists() || crate::util::scalar(&db, "SELECT count(*) FROM _sluice_checkpoints") < 2 {
        assert!(Instant::now() < deadline, "the worker committed nothing in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap().success());
    let out = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let made = actions_of(&stderr);
    for expected in ["dynamodb:CreateTable", "dynamodb:Scan", "dynamodb:UpdateItem", "kinesis:GetRecords"] {
        assert!(made.contains(expected), "{made:?}");
    }
    assert_covered(&made, &manifest);
}

#[test]
fn redshift_with_a_secret_and_staging_in_s3() {
    let w = Warehouse::new();
    // Enough distinct items for a batch too large for statements: staged for COPY.
    let g = generator::generate(&GenOptions {
        changes: 8000,
        items: 8000,
        seed: 92,
        precision: Precision::Microsecond,
        ..Default::default()
    });
    let dir = scratch();
    let tables =
        "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n[defaults]\ntarget = \"other_cdc\"\n";
    let manifest = pipeline_into(dir.path(), &g.records, 10_000, &w.sink(&w.staging()), tables);
    let made = calls(w.sluice().arg("run").arg(&manifest));
    for expected in ["redshift-data:BatchExecuteStatement", "s3:PutObject", "s3:GetBucketLocation"] {
        assert!(made.contains(expected), "{made:?}");
    }
    assert_covered(&made, &manifest);
}
