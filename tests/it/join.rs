//! The S3 join (`builtin:s3-join`) against moto's S3: documents that exist,
//! are missing, lie outside the allowed prefix, are too large or are not
//! JSON; items without a URI; the cache across batches; and the same join
//! through the file (stream record) source and the export source.

use std::path::Path;

use serde_json::{Value, json};
use sluice_test_support::unique_name;

use crate::export::{Export, sluice_s3};
use crate::util::{count, dump, run_ok, runtime, s3, scratch, stdout};

const DOC_A: &str =
    r#"{"color": "red", "price": 1.50, "nested": {"xs": [1, 2, 3]}, "big": 123456789012345678901234567890}"#;
const DOC_B: &str = r#"{"k":"v"}"#;

/// A bucket with the join's documents; returns its name.
pub(crate) fn documents() -> String {
    let bucket = unique_name("docs").replace('_', "-");
    let s3 = s3();
    let rt = runtime();
    rt.block_on(s3.create_bucket().bucket(&bucket).send()).unwrap();
    let huge = json!({ "pad": "x".repeat(200_000) }).to_string();
    for (key, body) in [
        ("docs/a.json", DOC_A.to_owned()),
        ("docs/b.json", DOC_B.to_owned()),
        ("docs/not-json.txt", "not json at all".to_owned()),
        ("docs/huge.json", huge),
        ("private/secret.json", r#"{"secret":true}"#.to_owned()),
    ] {
        rt.block_on(s3.put_object().bucket(&bucket).key(key).body(body.into_bytes().into()).send()).unwrap();
    }
    bucket
}

/// Items (DynamoDB JSON) and the URI attribute each carries.
pub(crate) fn items(bucket: &str) -> Vec<(String, Value)> {
    let uri = |key: &str| json!({ "S": format!("s3://{bucket}/{key}") });
    let mut items = vec![
        ("a".to_owned(), uri("docs/a.json")),
        ("missing".to_owned(), uri("docs/missing.json")),
        ("outside".to_owned(), uri("private/secret.json")),
        ("huge".to_owned(), uri("docs/huge.json")),
        ("not-json".to_owned(), uri("docs/not-json.txt")),
        ("number".to_owned(), json!({ "N": "7" })),
        ("none".to_owned(), Value::Null),
    ];
    for i in 0..20 {
        items.push((format!("b{i:02}"), uri("docs/b.json")));
    }
    items
        .into_iter()
        .map(|(id, uri)| {
            let mut item = json!({ "id": { "S": id }, "qty": { "N": "1" } });
            if !uri.is_null() {
                item["doc_uri"] = uri;
            }
            (id, item)
        })
        .collect()
}

fn stream_records(items: &[(String, Value)]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .map(|(i, (id, item))| {
            json!({
                "eventID": format!("e{i}"), "eventName": "INSERT", "tableName": "docs_items",
                "eventSource": "aws:dynamodb",
                "dynamodb": { "ApproximateCreationDateTime": 1_767_225_600_000u64 + i as u64,
                    "Keys": { "id": { "S": id } }, "NewImage": item }
            })
            .to_string()
        })
        .collect()
}

pub(crate) const TABLE: &str = "[[tables]]\nsource = \"docs_items\"\ntarget = \"joined\"\ntransform = \"builtin:s3-join\"\nkeys = [\"id\"]\n";

pub(crate) fn join_section(bucket: &str) -> String {
    format!(
        "[tables.join]\nattribute = \"doc_uri\"\nprefix = \"s3://{bucket}/docs/\"\nmax_object_bytes = 65536\n"
    )
}

/// (id, s3_uri, raw_s3_payload, status, error) of one row.
type Joined = (String, Option<String>, Option<String>, String, Option<String>);

pub(crate) fn joined(db: &Path) -> Vec<Joined> {
    dump(db, "SELECT json_extract(keys, '$.id'), s3_uri, raw_s3_payload, s3_join_status, error FROM joined ORDER BY 1")
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone(), r[2].clone(), r[3].clone().unwrap(), r[4].clone()))
        .collect()
}

fn assert_joined(db: &Path, bucket: &str) {
    let rows = joined(db);
    assert_eq!(rows.len(), 27, "{rows:?}");
    let by = |id: &str| rows.iter().find(|r| r.0 == id).unwrap_or_else(|| panic!("no row {id}: {rows:?}"));
    let doc = |text: &str| serde_json::from_str::<Value>(text).unwrap();

    let a = by("a");
    assert_eq!((a.3.as_str(), a.4.as_deref()), ("joined", None));
    assert_eq!(a.1.as_deref(), Some(format!("s3://{bucket}/docs/a.json").as_str()));
    assert_eq!(a.2.as_deref(), Some(DOC_A), "the document exactly, digits and all");
    assert_eq!(doc(a.2.as_deref().unwrap()), doc(DOC_A));
    for i in 0..20 {
        let b = by(&format!("b{i:02}"));
        assert_eq!((b.2.as_deref(), b.3.as_str()), (Some(DOC_B), "joined"));
    }
    let missing = by("missing");
    assert_eq!(
        (missing.2.as_deref(), missing.3.as_str(), missing.4.as_deref()),
        (Some("{}"), "missing", None)
    );
    let none = by("none");
    assert_eq!((none.1.as_deref(), none.2.as_deref(), none.3.as_str()), (None, Some("{}"), "no_uri"));
    for (id, why) in [
        ("outside", "outside the join's prefix"),
        ("huge", "too large"),
        ("not-json", "is not JSON"),
        ("number", "is not a string"),
    ] {
        let r = by(id);
        assert_eq!((r.2.as_deref(), r.3.as_str()), (None, "error"), "{r:?}");
        assert!(r.4.as_deref().unwrap_or("").contains(why), "{id}: {r:?}");
    }
}

/// Objects fetched from S3 in the run, from the fetcher's debug lines.
fn fetched(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("fetched=").nth(1))
        .map(|n| n.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// The items of `bucket` as stream records in a file, and a manifest joining
/// them into `out.db`, with `extra` sections.
pub(crate) fn stream_manifest(dir: &Path, bucket: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("stream.jsonl"), stream_records(&items(bucket)).join("\n")).unwrap();
    let manifest = dir.join("join.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"join\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n[sink]\ntype = \"sqlite\"\n\
             path = \"out.db\"\n{extra}{TABLE}{}",
            join_section(bucket)
        ),
    )
    .unwrap();
    manifest
}

#[test]
fn the_join_through_stream_records_matches_the_documents_and_fetches_each_once() {
    let bucket = documents();
    let dir = scratch();
    let manifest = stream_manifest(dir.path(), &bucket, "[batch]\nmax_records = 5\n");
    let out = run_ok(sluice_s3().arg("run").arg(&manifest).env("SLUICE_LOG", "sluice::guest::fetch=debug"));
    assert_joined(&dir.path().join("out.db"), &bucket);
    // a, b, missing, huge, not-json: five objects in the prefix, each read
    // once although b is named in four batches; the one outside is never read.
    assert_eq!(fetched(&String::from_utf8_lossy(&out.stderr)), 5, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        count(&stdout(&out), "dead-lettered"),
        0,
        "failed joins are rows with an error, not lost records"
    );
}

#[test]
fn the_same_join_through_an_export() {
    let bucket = documents();
    let dir = scratch();
    let lines: Vec<String> =
        items(&bucket).into_iter().map(|(_, item)| json!({ "Item": item }).to_string()).collect();
    let export = Export::new(&lines, 2, 1_800_000_000_000_000, false);
    let folder = export.write_local(dir.path());
    let manifest = dir.path().join("join.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"join\"\n[source]\ntype = \"export\"\npath = \"{}\"\ntable = \"docs_items\"\n[sink]\n\
             type = \"sqlite\"\npath = \"out.db\"\n{TABLE}{}",
            folder.display(),
            join_section(&bucket)
        ),
    )
    .unwrap();
    run_ok(sluice_s3().arg("run").arg(&manifest));
    assert_joined(&dir.path().join("out.db"), &bucket);
}

#[test]
fn a_join_needs_its_prefix() {
    let dir = scratch();
    let manifest = dir.path().join("join.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"join\"\n[source]\ntype = \"file\"\npath = \"s.jsonl\"\n[sink]\ntype = \"sqlite\"\npath = \"o.db\"\n{TABLE}"
        ),
    )
    .unwrap();
    let out = crate::util::sluice().arg("validate").arg(&manifest).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs a [tables.join] section"), "{err}");
}
