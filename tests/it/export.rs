//! The export source: DynamoDB exports written by the tests (gzip data files,
//! `manifest-files.json` with MD5s and item counts, `manifest-summary.json`)
//! to a local folder and to S3 (moto), loaded through the real binary.
//! Full and incremental exports, an empty data file, corrupt files, a kill
//! and resume, a backfill after newer streamed changes, and the hand-over
//! from an export to a Kinesis stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use sluice::generator::{self, GenOptions, Generated, Precision};
use sluice_test_support::{moto, unique_name};

use crate::kinesis::{Stream, run_to_tip};
use crate::util::{
    ItemState, ONE_BATCH_A_COMMIT, assert_same_items, canonical, count, expected_soft, pipeline, run_ok,
    runtime, s3, scalar, scratch, sluice, stdout, table_state,
};

/// The generated workload: one table with a composite key (`pk`, `sk`).
pub(crate) fn workload(seed: u64, changes: usize, start_micros: u64) -> Generated {
    generator::generate(&GenOptions {
        tables: vec!["orders".into(), "customers".into()],
        items: 120,
        changes,
        seed,
        precision: Precision::Microsecond,
        reorder: 20,
        duplicates: 0.05,
        start_micros,
        ..Default::default()
    })
}

pub(crate) const TABLE: &str = "customers";

/// A stream record's parts the tests need.
struct Record {
    table: String,
    micros: u64,
    keys: Value,
    new_image: Option<Value>,
    old_image: Option<Value>,
}

fn parse(record: &str) -> Record {
    let v: Value = serde_json::from_str(record).unwrap();
    let d = &v["dynamodb"];
    Record {
        table: v["tableName"].as_str().unwrap().to_owned(),
        micros: d["ApproximateCreationDateTime"].as_u64().unwrap(),
        keys: d["Keys"].clone(),
        new_image: d.get("NewImage").cloned(),
        old_image: d.get("OldImage").cloned(),
    }
}

/// The last change to each item of `TABLE` in `(after, until]`, by key.
fn last_changes(g: &Generated, after: u64, until: u64) -> BTreeMap<String, Record> {
    let mut last: BTreeMap<String, Record> = BTreeMap::new();
    for r in g.records.iter().map(|r| parse(r)) {
        if r.table != TABLE || r.micros <= after || r.micros > until {
            continue;
        }
        let key = r.keys.to_string();
        if last.get(&key).is_none_or(|l| l.micros <= r.micros) {
            last.insert(key, r);
        }
    }
    last
}

/// Full-export lines: every item alive at `at`.
pub(crate) fn full_lines(g: &Generated, at: u64) -> Vec<String> {
    last_changes(g, 0, at)
        .into_values()
        .filter_map(|r| r.new_image)
        .map(|item| json!({ "Item": item }).to_string())
        .collect()
}

/// Incremental-export lines for the window `(from, to]`.
fn incremental_lines(g: &Generated, from: u64, to: u64) -> Vec<String> {
    last_changes(g, from, to)
        .into_values()
        .map(|r| {
            let mut line = json!({
                "Metadata": { "WriteTimestampMicros": { "N": r.micros.to_string() } },
                "Keys": r.keys,
            });
            if let Some(new) = r.new_image {
                line["NewImage"] = new;
            }
            if let Some(old) = r.old_image {
                line["OldImage"] = old;
            }
            line.to_string()
        })
        .collect()
}

/// An export as DynamoDB writes it.
pub(crate) struct Export {
    id: String,
    /// Data files: name and stored bytes.
    files: Vec<(String, Vec<u8>, usize)>,
    summary: Value,
    /// Overrides for a data file's manifest line (bad MD5s).
    md5_override: BTreeMap<usize, String>,
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in lines {
        gz.write_all(line.as_bytes()).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.finish().unwrap()
}

fn md5_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

fn micros_to_rfc3339(micros: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    humantime::format_rfc3339_micros(t).to_string()
}

impl Export {
    /// `lines` split over `files` data files (the last one empty when asked).
    pub(crate) fn new(lines: &[String], files: usize, as_of_micros: u64, incremental: bool) -> Self {
        let id = format!("01767225600000-{:08x}", rand_id());
        let per_file = lines.len().div_ceil(files.max(1)).max(1);
        let mut out: Vec<(String, Vec<u8>, usize)> = lines
            .chunks(per_file)
            .enumerate()
            .map(|(i, chunk)| (format!("data/{i:04}-{id}.json.gz"), gzip(chunk), chunk.len()))
            .collect();
        out.push((format!("data/empty-{id}.json.gz"), gzip(&[]), 0));
        let time = micros_to_rfc3339(as_of_micros);
        let mut summary = json!({
            "version": "2020-06-30",
            "exportArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/export/{id}"),
            "tableArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"),
            "tableId": "0c3d3f5c-0000-0000-0000-000000000000",
            "manifestFilesS3Key": format!("backups/AWSDynamoDB/{id}/manifest-files.json"),
            "itemCount": lines.len(),
            "outputFormat": "DYNAMODB_JSON",
            "exportType": if incremental { "INCREMENTAL_EXPORT" } else { "FULL_EXPORT" },
        });
        if incremental {
            summary["exportFromTime"] = json!("2026-01-01T00:00:00Z");
            summary["exportToTime"] = json!(time);
        } else {
            summary["exportTime"] = json!(time);
        }
        Export { id, files: out, summary, md5_override: BTreeMap::new() }
    }

    fn manifest_files(&self) -> String {
        self.files
            .iter()
            .enumerate()
            .map(|(i, (name, bytes, items))| {
                json!({
                    "itemCount": items,
                    "md5Checksum": self.md5_override.get(&i).cloned().unwrap_or_else(|| md5_base64(bytes)),
                    "etag": Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    "dataFileS3Key": format!("backups/AWSDynamoDB/{}/{name}", self.id),
                })
                .to_string()
                    + "\n"
            })
            .collect()
    }

    /// Writes it under `root/AWSDynamoDB/<id>/`; returns that folder.
    pub(crate) fn write_local(&self, root: &Path) -> PathBuf {
        let folder = root.join("AWSDynamoDB").join(&self.id);
        std::fs::create_dir_all(folder.join("data")).unwrap();
        for (name, bytes, _) in &self.files {
            std::fs::write(folder.join(name), bytes).unwrap();
        }
        std::fs::write(folder.join("manifest-files.json"), self.manifest_files()).unwrap();
        std::fs::write(folder.join("manifest-summary.json"), self.summary.to_string()).unwrap();
        folder
    }

    /// Uploads it to a fresh bucket under `backups/`; returns the folder's URI.
    pub(crate) fn upload(&self) -> String {
        let bucket = unique_name("export").replace('_', "-");
        let s3 = s3();
        let put = |key: String, body: Vec<u8>| {
            runtime().block_on(s3.put_object().bucket(&bucket).key(key).body(body.into()).send()).unwrap();
        };
        runtime().block_on(s3.create_bucket().bucket(&bucket).send()).unwrap();
        let folder = format!("backups/AWSDynamoDB/{}/", self.id);
        for (name, bytes, _) in &self.files {
            put(format!("{folder}{name}"), bytes.clone());
        }
        put(format!("{folder}manifest-files.json"), self.manifest_files().into_bytes());
        put(format!("{folder}manifest-summary.json"), self.summary.to_string().into_bytes());
        format!("s3://{bucket}/{folder}")
    }
}

fn rand_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::process::id().wrapping_mul(7919) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A manifest loading the export at `path` into `out.db`.
fn manifest(dir: &Path, path: &str, extra_source: &str, batch: usize) -> PathBuf {
    let manifest = dir.join("export.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"backfill\"\n[source]\ntype = \"export\"\npath = \"{path}\"\n{extra_source}\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[batch]\nmax_records = {batch}\n\
             [[tables]]\nsource = \"{TABLE}\"\ntarget = \"customers_cdc\"\nkeys = [\"sk\", \"pk\"]\n"
        ),
    )
    .unwrap();
    manifest
}

/// `sluice` with S3 pointed at moto.
pub(crate) fn sluice_s3() -> std::process::Command {
    let mut cmd = sluice();
    cmd.env("AWS_ENDPOINT_URL_S3", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    cmd
}

/// Live rows of the sink table: key and image.
pub(crate) fn live(db: &Path) -> Vec<(String, Value)> {
    table_state(db, "customers_cdc")
        .into_iter()
        .filter(|i| !i.deleted)
        .map(|i| (i.key, canonical(&i.new_image.unwrap())))
        .collect()
}

/// Live items the workload leaves at the end.
pub(crate) fn expected_live(g: &Generated) -> Vec<(String, Value)> {
    let mut items: Vec<(String, Value)> = g
        .expected
        .iter()
        .filter(|e| e.table == TABLE && !e.deleted)
        .map(|e| (e.key.clone(), canonical(e.new_image.as_ref().unwrap())))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

fn dead_letters(db: &Path) -> i64 {
    scalar(db, "SELECT count(*) FROM _sluice_dead_letters")
}

#[test]
fn a_full_export_in_s3_leaves_exactly_the_exported_items() {
    let g = workload(71, 3000, 1_767_225_600_000_000);
    let lines = full_lines(&g, u64::MAX);
    let export = Export::new(&lines, 3, 1_800_000_000_000_000, false);
    let uri = export.upload();
    let dir = scratch();
    let out = run_ok(sluice_s3().arg("run").arg(manifest(dir.path(), &uri, "", 100)));
    let summary = stdout(&out);
    assert_eq!(count(&summary, "records read"), lines.len() as u64);
    let db = dir.path().join("out.db");
    assert_eq!(live(&db), expected_live(&g));
    assert_eq!(table_state(&db, "customers_cdc").len(), lines.len(), "only the exported items");
    assert_eq!(dead_letters(&db), 0);
    let names: Vec<Vec<Option<String>>> =
        crate::util::dump(&db, "SELECT DISTINCT last_event_name FROM customers_cdc");
    assert_eq!(names, vec![vec![Some("BULK_LOAD".to_owned())]]);
    // Everything is committed: a second run reads nothing.
    let again = stdout(&run_ok(sluice_s3().arg("run").arg(dir.path().join("export.toml"))));
    assert_eq!(count(&again, "records read"), 0, "{again}");
}

#[test]
fn a_data_file_whose_read_breaks_mid_way_is_resumed_where_it_broke() {
    let g = generator::generate(&GenOptions {
        tables: vec!["orders".into(), TABLE.into()],
        items: 3000,
        changes: 6000,
        seed: 77,
        precision: Precision::Microsecond,
        start_micros: 1_767_225_600_000_000,
        ..Default::default()
    });
    let lines = full_lines(&g, u64::MAX);
    let export = Export::new(&lines, 2, 1_800_000_000_000_000, false);
    let uri = export.upload();
    let dir = scratch();
    let out = run_ok(
        sluice_s3()
            .arg("run")
            .arg(manifest(dir.path(), &uri, "parallel = 1", 100))
            .env("SLUICE_LOG", "sluice=warn")
            .env("FAILPOINTS", "objects::s3_read=return"),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let resumed: Vec<&str> = log.lines().filter(|l| l.contains("resuming there")).collect();
    assert!(resumed.iter().any(|l| !l.contains("after 0 bytes")), "no read was resumed part-way:\n{log}");
    let db = dir.path().join("out.db");
    assert_eq!(live(&db), expected_live(&g));
    assert_eq!(dead_letters(&db), 0);
}

#[test]
fn a_full_then_an_incremental_export_from_a_local_folder_give_the_latest_state() {
    let g = workload(72, 3000, 1_767_225_600_000_000);
    let middle = parse(&g.records[g.records.len() / 2]).micros;
    let dir = scratch();
    let full = Export::new(&full_lines(&g, middle), 4, middle, false);
    let folder = full.write_local(&dir.path().join("exports"));
    let path = folder.strip_prefix(dir.path()).unwrap().display().to_string();
    run_ok(sluice().arg("run").arg(manifest(dir.path(), &path, "", 64)));

    let last = g.records.iter().map(|r| parse(r).micros).max().unwrap();
    let incremental = Export::new(&incremental_lines(&g, middle, last), 2, last, true);
    let folder = incremental.write_local(&dir.path().join("exports"));
    let path = folder.strip_prefix(dir.path()).unwrap().display().to_string();
    let summary = stdout(&run_ok(sluice().arg("run").arg(manifest(dir.path(), &path, "", 64))));
    assert!(count(&summary, "rows deleted") > 0, "the window holds deletes:\n{summary}");
    let db = dir.path().join("out.db");
    assert_eq!(live(&db), expected_live(&g));
    assert_eq!(dead_letters(&db), 0);
}

#[test]
fn a_backfill_loaded_after_newer_stream_changes_does_not_revert_them() {
    let g = workload(73, 3000, 1_767_225_600_000_000);
    let dir = scratch();
    // Stream everything first...
    let streamed = pipeline(
        dir.path(),
        &g.records,
        200,
        &format!("[[tables]]\nsource = \"{TABLE}\"\ntarget = \"customers_cdc\"\n"),
    );
    run_ok(sluice().arg("run").arg(&streamed));
    // ...then load an export taken in the middle of it.
    let middle = parse(&g.records[g.records.len() / 2]).micros;
    let export = Export::new(&full_lines(&g, middle), 2, middle, false);
    let folder = export.write_local(dir.path());
    let path = folder.strip_prefix(dir.path()).unwrap().display().to_string();
    let summary = stdout(&run_ok(sluice().arg("run").arg(manifest(dir.path(), &path, "", 100))));
    assert!(count(&summary, "stale, not applied") > 0, "{summary}");
    // Items unchanged since the export now carry its row (same image,
    // `BULK_LOAD`, no event id); no item went back to an older state.
    let without_ids = |items: Vec<ItemState>| -> Vec<ItemState> {
        items.into_iter().map(|i| ItemState { event_id: String::new(), ..i }).collect()
    };
    assert_same_items(
        &without_ids(table_state(&dir.path().join("out.db"), "customers_cdc")),
        &without_ids(expected_soft(&g.expected, &[TABLE])),
    );
}

#[test]
fn a_killed_load_resumes_without_reloading_finished_files() {
    let g = workload(74, 3000, 1_767_225_600_000_000);
    let lines = full_lines(&g, u64::MAX);
    let export = Export::new(&lines, 6, 1_800_000_000_000_000, false);
    let dir = scratch();
    let folder = export.write_local(dir.path());
    let path = folder.strip_prefix(dir.path()).unwrap().display().to_string();
    let manifest = manifest(dir.path(), &path, "parallel = 1", 10);
    // The crash comes after the fifth commit, so every batch is committed alone.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("[batch]\n", &format!("[batch]\n{ONE_BATCH_A_COMMIT}"))).unwrap();
    let crashed = sluice()
        .arg("run")
        .arg(&manifest)
        .env("FAILPOINTS", "sink::after_commit=4*off->return")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let out = run_ok(sluice().arg("run").arg(&manifest).env("SLUICE_LOG", "sluice=info"));
    let (summary, log) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
    let second = count(&summary, "records read");
    assert!(second > 0 && second < lines.len() as u64 - 10, "resumed after the committed lines: {second}");
    assert!(log.contains("data files were loaded by an earlier run"), "{log}");
    assert_eq!(live(&dir.path().join("out.db")), expected_live(&g));
}

#[test]
fn corrupt_files_stop_the_load_with_a_clear_error_and_bad_lines_are_dead_lettered() {
    let g = workload(75, 800, 1_767_225_600_000_000);
    let mut lines = full_lines(&g, u64::MAX);
    let dir = scratch();
    let load = |export: &Export, name: &str| {
        let root = dir.path().join(name);
        let folder = export.write_local(&root);
        let manifest = manifest(&root, &folder.display().to_string(), "", 100);
        sluice().arg("run").arg(manifest).output().unwrap()
    };

    // A bad MD5: the file differs from what DynamoDB wrote.
    let mut bad_md5 = Export::new(&lines, 2, 1_800_000_000_000_000, false);
    bad_md5.md5_override.insert(1, md5_base64(b"something else"));
    let out = load(&bad_md5, "md5");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("MD5") && err.contains(&bad_md5.files[1].0), "{err}");

    // A truncated gzip file (its MD5 matching the truncated bytes).
    let mut truncated = Export::new(&lines, 2, 1_800_000_000_000_000, false);
    let cut = truncated.files[0].1.len() / 2;
    truncated.files[0].1.truncate(cut);
    let out = load(&truncated, "truncated");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("truncated or corrupt gzip") && err.contains(&truncated.files[0].0), "{err}");

    // A malformed line: dead-lettered with its reason, the rest loaded.
    lines.insert(3, r#"{"Item":{"pk":{"S":"x"},"sk":{"N":"1"},"bad":{"Q":"?"}}}"#.to_owned());
    let malformed = Export::new(&lines, 2, 1_800_000_000_000_000, false);
    let out = load(&malformed, "malformed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = dir.path().join("malformed/out.db");
    let reasons = crate::util::dump(&db, "SELECT reason, origin FROM _sluice_dead_letters");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0][0].as_deref().unwrap();
    assert!(reason.contains("unknown attribute type \"Q\""), "{reason}");
    assert!(reasons[0][1].as_deref().unwrap().ends_with(".json.gz:4"), "{reasons:?}");
    assert_eq!(live(&db), expected_live(&g));
}

#[test]
fn ion_exports_and_missing_keys_are_refused_clearly() {
    let g = workload(76, 100, 1_767_225_600_000_000);
    let dir = scratch();
    let mut ion = Export::new(&full_lines(&g, u64::MAX), 1, 1_800_000_000_000_000, false);
    ion.summary["outputFormat"] = json!("ION");
    let folder = ion.write_local(dir.path());
    let out = sluice()
        .arg("run")
        .arg(manifest(dir.path(), &folder.display().to_string(), "", 100))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ION format") && err.contains("DYNAMODB_JSON"), "{err}");

    let full = Export::new(&full_lines(&g, u64::MAX), 1, 1_800_000_000_000_000, false);
    let folder = full.write_local(dir.path());
    let manifest = manifest(dir.path(), &folder.display().to_string(), "", 100);
    let text = std::fs::read_to_string(&manifest).unwrap().replace("keys = [\"sk\", \"pk\"]\n", "");
    std::fs::write(&manifest, text).unwrap();
    let out = sluice().arg("run").arg(&manifest).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("keys = ["), "{err}");
}

/// A stream as a live table's around an export: a change that arrived well
/// before the export (the hand-over must start the stream after it, at
/// exportTime - margin, or it would add an item that the table does not
/// have), then changes around now. Returns the stream, the changes, and
/// the export's time, two thirds of the way through them.
pub(crate) fn a_stream_around_an_export(shards: i32, seed: u64) -> (Stream, Generated, u64) {
    let stream = Stream::new(shards);
    let poison = r#"{"eventID":"poison","eventName":"INSERT","tableName":"customers","eventSource":"aws:dynamodb",
        "dynamodb":{"ApproximateCreationDateTime":4102444800000000,"ApproximateCreationDateTimePrecision":"MICROSECOND",
        "Keys":{"pk":{"S":"poison"},"sk":{"N":"0"}},"NewImage":{"pk":{"S":"poison"},"sk":{"N":"0"}}}}"#;
    stream.put(&[poison.replace('\n', "")]);
    std::thread::sleep(std::time::Duration::from_secs(3));

    // Changes around now, as a live table's are; the export is taken two
    // thirds of the way through them.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let g = workload(seed, 2400, now - 2_000_000);
    let export_time = parse(&g.records[g.records.len() * 2 / 3]).micros;
    // The stream kept the changes from well before the export until now,
    // so the export window and its overlap are read twice.
    let window_start = parse(&g.records[g.records.len() / 3]).micros;
    let in_stream: Vec<String> =
        g.records.iter().filter(|r| parse(r).micros >= window_start).cloned().collect();
    stream.put(&in_stream);
    (stream, g, export_time)
}

#[test]
fn the_hand_over_from_an_export_to_the_stream_ends_in_the_latest_state() {
    let (stream, g, export_time) = a_stream_around_an_export(2, 77);
    let dir = scratch();
    let export = Export::new(&full_lines(&g, export_time), 3, export_time, false);
    let folder = export.write_local(dir.path());
    let path = folder.strip_prefix(dir.path()).unwrap().display().to_string();
    let then = format!("then = {{ type = \"kinesis\", stream_arn = \"{}\", margin = \"1s\" }}", stream.arn);
    let manifest = manifest(dir.path(), &path, &then, 100);
    let (summary, log) = run_to_tip(&manifest, None);
    assert!(log.contains("export loaded; shards without a checkpoint are read from"), "{log}");
    assert!(count(&summary, "stale, not applied") > 0, "the overlap was read again:\n{summary}");
    let db = dir.path().join("out.db");
    assert_eq!(live(&db), expected_live(&g), "the poison record must not be read");
    // A restart goes straight to the stream, which has nothing new.
    let (again, _) = run_to_tip(&manifest, None);
    assert_eq!(count(&again, "records read"), 0, "{again}");
}
