//! The S3 sink against moto's S3 and a local folder: every distinct change
//! once, even after a crash between the data and the checkpoint and a
//! replay; the latest per item in `latest` mode; objects per table and date.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sluice::generator::{self, GenOptions, Generated, Precision};
use sluice_test_support::unique_name;

use crate::export::sluice_s3;
use crate::util::{canonical, expected_soft, run_ok, runtime, s3, scratch};

fn workload(seed: u64) -> Generated {
    generator::generate(&GenOptions {
        changes: 1500,
        items: 60,
        seed,
        precision: Precision::Microsecond,
        duplicates: 0.1,
        reorder: 20,
        ..Default::default()
    })
}

fn manifest(dir: &Path, g: &Generated, sink: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("stream.jsonl"), g.records.join("\n")).unwrap();
    let manifest = dir.join("out.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"out\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n[sink]\n{sink}\n\
             [batch]\nmax_records = 100\n[defaults]\ntarget = \"cdc\"\n"
        ),
    )
    .unwrap();
    manifest
}

/// Every object's key, with the lines of the data objects.
pub(crate) fn s3_objects(bucket: &str) -> BTreeMap<String, Vec<Value>> {
    let (s3, rt) = (s3(), runtime());
    let listed = rt.block_on(s3.list_objects_v2().bucket(bucket).send()).unwrap();
    let mut objects = BTreeMap::new();
    for o in listed.contents() {
        let key = o.key().unwrap().to_owned();
        if !key.contains(".jsonl") {
            objects.insert(key, Vec::new());
            continue;
        }
        let got = rt.block_on(s3.get_object().bucket(bucket).key(&key).send()).unwrap();
        let bytes = rt.block_on(got.body.collect()).unwrap().into_bytes().to_vec();
        objects.insert(key.clone(), lines(&key, &bytes));
    }
    objects
}

fn lines(key: &str, bytes: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    if key.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
    } else {
        text = String::from_utf8(bytes.to_vec()).unwrap();
    }
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

pub(crate) fn distinct_events(g: &Generated) -> BTreeSet<String> {
    g.records
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap()["eventID"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_change_is_written_once_even_when_a_crashed_batch_is_replayed() {
    let bucket = unique_name("out").replace('_', "-");
    runtime().block_on(s3().create_bucket().bucket(&bucket).send()).unwrap();
    let g = workload(81);
    let dir = scratch();
    let manifest =
        manifest(dir.path(), &g, &format!("type = \"s3\"\npath = \"s3://{bucket}/cdc-out/\"\ngzip = true"));
    // Dies after writing batch 4's objects, before its checkpoint.
    let crashed = sluice_s3()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::before_commit=3*off->return")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let orphaned = s3_objects(&bucket);
    assert!(orphaned.keys().any(|k| k.ends_with("out-000000000004.jsonl.gz")), "{:?}", orphaned.keys());
    run_ok(sluice_s3().arg("run").arg(&manifest));

    let objects = s3_objects(&bucket);
    let data: Vec<&String> = objects.keys().filter(|k| k.starts_with("cdc-out/cdc/date=")).collect();
    assert!(!data.is_empty() && data.iter().all(|k| k.ends_with(".jsonl.gz")), "{data:?}");
    assert!(objects.contains_key("cdc-out/_sluice/checkpoints/out.json"));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for key in data {
        for line in &objects[key] {
            *seen.entry(line["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "changes written twice: {twice:?}");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), distinct_events(&g));
}

#[test]
fn latest_mode_writes_the_latest_change_per_item_to_a_local_folder() {
    let g = workload(82);
    let dir = scratch();
    let manifest = manifest(dir.path(), &g, "type = \"s3\"\npath = \"lake\"\nmode = \"latest\"");
    run_ok(sluice_s3().arg("run").arg(&manifest));
    let mut latest: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut files = 0;
    for day in std::fs::read_dir(dir.path().join("lake/cdc")).unwrap() {
        for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let rows = lines(&path.display().to_string(), &std::fs::read(&path).unwrap());
            files += 1;
            let keys: BTreeSet<(String, String)> =
                rows.iter().map(|r| (r["table_name"].to_string(), r["keys"].to_string())).collect();
            assert_eq!(keys.len(), rows.len(), "one row per item in {}", path.display());
            for row in rows {
                let id = (
                    row["table_name"].as_str().unwrap().to_owned(),
                    row["keys"].as_str().unwrap().to_owned(),
                );
                let newer = |old: &Value| {
                    let order = |r: &Value| {
                        let seq = r["change_seq"].as_str().unwrap().to_owned();
                        (r["change_micros"].as_u64().unwrap(), seq.len(), seq)
                    };
                    order(&row) >= order(old)
                };
                if latest.get(&id).is_none_or(newer) {
                    latest.insert(id, row);
                }
            }
        }
    }
    assert!(files > 1);
    let expected = expected_soft(&g.expected, &["orders", "customers", "devices"]);
    assert_eq!(latest.len(), expected.len());
    for e in expected {
        let row = &latest[&(e.table.clone(), e.key.clone())];
        assert_eq!(row["is_deleted"].as_bool().unwrap(), e.deleted, "{row}");
        if !e.deleted {
            assert_eq!(canonical(&row["new_image"]), canonical(e.new_image.as_ref().unwrap()), "{row}");
        }
    }
}
