//! The Kinesis source against a real Kinesis API on 127.0.0.1
//! (kinesis-local): several shards, a split and a merge while a run is
//! going, a kill -9 and restart, duplicates and reordering, throttling and
//! expired iterators (injected, which the emulator cannot do), a role
//! assumed through STS (moto), and a clean stop on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use sluice::generator::{self, GenOptions, Precision};
use sluice_test_support::{kinesis, moto, unique_name};

use crate::util::{assert_same_items, count, expected_soft, runtime, scratch, sluice, stdout, table_state};

fn client() -> aws_sdk_kinesis::Client {
    kinesis::shared().client()
}

/// A fresh stream with `shards` shards, active.
pub struct Stream {
    pub arn: String,
    name: String,
}

impl Stream {
    pub fn new(shards: i32) -> Self {
        let name = unique_name("cdc").replace('_', "-");
        let rt = runtime();
        let k = client();
        rt.block_on(k.create_stream().stream_name(&name).shard_count(shards).send()).unwrap();
        let stream = Stream { arn: kinesis::shared().stream_arn(&name), name };
        stream.wait_active();
        stream
    }

    fn wait_active(&self) {
        let rt = runtime();
        let k = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = rt.block_on(k.describe_stream_summary().stream_arn(&self.arn).send()).unwrap();
            let summary = d.stream_description_summary().expect("a summary");
            if summary.stream_status().as_str() == "ACTIVE" {
                return;
            }
            assert!(Instant::now() < deadline, "stream {} is not active after 30 s", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts records as Kinesis Data Streams for DynamoDB does: the item's
    /// key is the partition key, so an item's changes share a shard.
    pub fn put(&self, records: &[String]) {
        let rt = runtime();
        let k = client();
        for chunk in records.chunks(200) {
            let entries = chunk
                .iter()
                .map(|r| {
                    let v: serde_json::Value = serde_json::from_str(r).unwrap();
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .data(Blob::new(r.as_bytes()))
                        .partition_key(v["dynamodb"]["Keys"].to_string())
                        .build()
                        .unwrap()
                })
                .collect();
            let out =
                rt.block_on(k.put_records().stream_arn(&self.arn).set_records(Some(entries)).send()).unwrap();
            assert_eq!(out.failed_record_count(), Some(0), "every record is accepted");
        }
    }

    fn open_shards(&self) -> Vec<aws_sdk_kinesis::types::Shard> {
        let rt = runtime();
        let listed = rt.block_on(client().list_shards().stream_arn(&self.arn).send()).unwrap();
        let mut shards: Vec<_> = listed
            .shards()
            .iter()
            .filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()))
            .cloned()
            .collect();
        shards.sort_by(|a, b| {
            let start = |s: &aws_sdk_kinesis::types::Shard| {
                s.hash_key_range().map(|h| h.starting_hash_key().parse::<u128>().unwrap()).unwrap_or(0)
            };
            start(a).cmp(&start(b))
        });
        shards
    }

    /// Splits the first open shard in the middle of its hash range.
    pub fn split(&self) {
        let shard = self.open_shards().remove(0);
        let range = shard.hash_key_range().unwrap();
        let (lo, hi): (u128, u128) =
            (range.starting_hash_key().parse().unwrap(), range.ending_hash_key().parse().unwrap());
        let middle = lo + (hi - lo) / 2;
        runtime()
            .block_on(
                client()
                    .split_shard()
                    .stream_arn(&self.arn)
                    .shard_to_split(shard.shard_id())
                    .new_starting_hash_key(middle.to_string())
                    .send(),
            )
            .unwrap();
        self.wait_active();
    }

    /// Merges the first two open shards (adjacent in hash range).
    pub fn merge(&self) {
        let shards = self.open_shards();
        runtime()
            .block_on(
                client()
                    .merge_shards()
                    .stream_arn(&self.arn)
                    .shard_to_merge(shards[0].shard_id())
                    .adjacent_shard_to_merge(shards[1].shard_id())
                    .send(),
            )
            .unwrap();
        self.wait_active();
    }
}

pub fn stream_of(seed: u64, changes: usize) -> generator::Generated {
    generator::generate(&GenOptions {
        changes,
        items: 80,
        seed,
        precision: Precision::Microsecond,
        reorder: 30,
        duplicates: 0.1,
        tables: vec!["orders".into()],
        ..Default::default()
    })
}

/// A manifest reading `stream` into `out.db`.
fn manifest(dir: &Path, stream: &Stream, extra_source: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"k\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{}\"\n{extra_source}\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[batch]\nmax_records = 100\nmax_wait_ms = 200\n\
             [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n\
             [[tables]]\nsource = \"canary\"\ntarget = \"canary_cdc\"\n",
            stream.arn
        ),
    )
    .unwrap();
    path
}

/// Puts rounds of fresh changes to table `canary` until a whole round
/// arrives: then a run that started at `latest` is reading every shard at
/// its tip, and nothing put afterwards may be missed.
fn wait_until_reading_at_the_tip(stream: &Stream, db: &Path) {
    for round in 0..30 {
        let records: Vec<String> = (0..16)
            .map(|i| {
                format!(
                    r#"{{"eventID":"canary-{round}-{i}","eventName":"INSERT","tableName":"canary","eventSource":"aws:dynamodb","dynamodb":{{"ApproximateCreationDateTime":1767225600000,"Keys":{{"id":{{"S":"{round}-{i}"}}}},"NewImage":{{"id":{{"S":"{round}-{i}"}}}}}}}}"#
                )
            })
            .collect();
        stream.put(&records);
        // Two queries: SQLite resolves every table a statement names when it
        // prepares it, so one statement fails until the run has created the table.
        let arrived = || {
            db.exists()
                && crate::util::scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'canary_cdc'")
                    == 1
                && crate::util::scalar(
                    db,
                    &format!("SELECT count(*) FROM canary_cdc WHERE event_id LIKE 'canary-{round}-%'"),
                ) == 16
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if arrived() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("the run never read a whole round of canaries");
}

/// Waits until `orders_cdc` holds exactly the expected items, or 90 s.
fn wait_for_latest_state(dir: &Path, g: &generator::Generated) {
    let expected = expected_soft(&g.expected, &["orders"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if table_state(&dir.join("out.db"), "orders_cdc") == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_latest_state(dir, g);
}

/// A run started at `latest` on an empty stream, then a split and a merge
/// while changes keep coming: the children are read from their oldest
/// record, so every change arrives.
fn latest_start_reads_children_from_their_oldest_record(extra_source: &str, seed: u64) {
    let stream = Stream::new(2);
    let g = stream_of(seed, 1500);
    let thirds: Vec<&[String]> = g.records.chunks(g.records.len().div_ceil(3)).collect();
    let dir = scratch();
    let manifest = manifest(dir.path(), &stream, &format!("start = \"latest\"\n{extra_source}"));
    let log = dir.path().join("run.log");
    let run: Child = sluice_k()
        .arg("run")
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until_reading_at_the_tip(&stream, &dir.path().join("out.db"));

    stream.put(thirds[0]);
    stream.split();
    stream.put(thirds[1]);
    stream.merge();
    stream.put(thirds[2]);
    wait_for_latest_state(dir.path(), &g);

    let signalled = Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
    assert!(signalled.success());
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a clean stop");
    assert_latest_state(dir.path(), &g);
    assert_parents_first(&[std::fs::read_to_string(&log).unwrap()], 3);
}

#[test]
fn a_latest_start_reads_split_and_merged_children_whole_when_polling() {
    latest_start_reads_children_from_their_oldest_record("", 68);
}

#[test]
fn a_latest_start_reads_split_and_merged_children_whole_with_enhanced_fan_out() {
    latest_start_reads_children_from_their_oldest_record("consumer = \"sluice-latest\"", 69);
}

/// `sluice` pointed at kinesis-local and moto, with fake credentials.
pub fn sluice_k() -> Command {
    let mut cmd = sluice();
    cmd.env("AWS_ENDPOINT_URL_KINESIS", kinesis::shared().endpoint())
        .env("AWS_ENDPOINT_URL_STS", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", kinesis::shared().region())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SLUICE_LOG", "sluice=info")
        .env_remove("AWS_PROFILE");
    cmd
}

/// Runs to the tip; a run still going after two minutes is killed and fails
/// the test with its log, so a hang cannot stall the suite.
pub fn run_to_tip(manifest: &Path, failpoints: Option<&str>) -> (String, String) {
    to_the_end(&["run", "--exit-when-caught-up"], manifest, failpoints)
}

/// Runs `sluice <args> <manifest>`, which must end by itself within two minutes.
fn to_the_end(args: &[&str], manifest: &Path, failpoints: Option<&str>) -> (String, String) {
    let dir = manifest.parent().unwrap();
    let (out_path, err_path) = (dir.join("run.stdout"), dir.join("run.stderr"));
    let mut cmd = sluice_k();
    cmd.args(args)
        .arg(manifest)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    if let Some(f) = failpoints {
        cmd.env("FAILPOINTS", f);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("not caught up after 2 minutes; stderr:\n{}", std::fs::read_to_string(&err_path).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) =
        (std::fs::read_to_string(&out_path).unwrap(), std::fs::read_to_string(&err_path).unwrap());
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    (stdout, stderr)
}

fn assert_latest_state(dir: &Path, g: &generator::Generated) {
    assert_same_items(
        &table_state(&dir.join("out.db"), "orders_cdc"),
        &expected_soft(&g.expected, &["orders"]),
    );
}

/// Lines of the form `... reading shard after its parents ended shard="X" parents="A B"` and
/// `... shard read to its end shard="A"`: every child starts after its parents ended, in this
/// run or an earlier one.
fn assert_parents_first(logs: &[String], min_children: usize) {
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let rest = line[start..].trim_start_matches('"');
        Some(rest.split(['"', ' ']).next().unwrap_or("").to_owned())
    };
    let parents_of = |line: &str| -> Vec<String> {
        let start = line.find("parents=\"").map(|i| i + 9).unwrap();
        line[start..].split('"').next().unwrap().split(' ').map(str::to_owned).collect()
    };
    let mut ended: Vec<String> = Vec::new();
    let mut children = 0;
    for log in logs {
        for line in log.lines() {
            if line.contains("shard read to its end") {
                ended.push(field(line, "shard").unwrap());
            } else if line.contains("reading shard after its parents ended") {
                children += 1;
                let child = field(line, "shard").unwrap();
                for parent in parents_of(line) {
                    assert!(
                        ended.contains(&parent),
                        "{child} started before its parent {parent} ended:\n{log}"
                    );
                }
            }
        }
    }
    assert!(
        children >= min_children,
        "expected at least {min_children} child shards to be read; saw {children}"
    );
}

#[test]
fn several_shards_end_in_the_latest_state_of_every_item() {
    let stream = Stream::new(4);
    let g = stream_of(61, 1500);
    stream.put(&g.records);
    let dir = scratch();
    let (summary, _) = run_to_tip(&manifest(dir.path(), &stream, ""), None);
    assert_eq!(count(&summary, "records read"), g.records.len() as u64);
    assert_latest_state(dir.path(), &g);
    let again = run_to_tip(&dir.path().join("pipeline.toml"), None).0;
    assert_eq!(count(&again, "records read"), 0, "everything was committed");
}

/// GetRecords returns pages of up to 10,000 records; a batch still stops
/// at `max_records` (100 here), the rest of the page opening the next.
#[test]
fn a_page_larger_than_a_batch_is_cut_at_max_records() {
    let stream = Stream::new(1);
    let g = stream_of(69, 1000);
    stream.put(&g.records);
    let dir = scratch();
    let (summary, _) = run_to_tip(&manifest(dir.path(), &stream, ""), None);
    assert_eq!(count(&summary, "records read"), g.records.len() as u64);
    let (batches, _) = crate::util::batches_and_commits(&summary);
    assert!(
        batches as usize >= g.records.len().div_ceil(100),
        "{batches} batches for {} records",
        g.records.len()
    );
    assert_latest_state(dir.path(), &g);
}

#[test]
fn a_split_and_a_merge_during_a_run_killed_and_restarted_lose_nothing() {
    let stream = Stream::new(2);
    let g = stream_of(62, 3000);
    let thirds: Vec<&[String]> = g.records.chunks(g.records.len().div_ceil(3)).collect();
    let dir = scratch();
    let manifest = manifest(dir.path(), &stream, "");
    let log = dir.path().join("first-run.log");
    let mut run: Child = sluice_k()
        .arg("run")
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    stream.put(thirds[0]);
    stream.split();
    stream.put(thirds[1]);
    stream.merge();
    stream.put(thirds[2]);
    // Kill it (no clean-up) once it has committed something past the split.
    let db = dir.path().join("out.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("reading shard after its parents ended")
    {
        assert!(
            Instant::now() < deadline,
            "no child shard was started:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(db.exists());

    let (_, second) = run_to_tip(&manifest, None);
    assert_latest_state(dir.path(), &g);
    // The split made two children, the merge one more.
    assert_parents_first(&[std::fs::read_to_string(&log).unwrap(), second], 3);
}

/// A replay reads a resharded stream from its oldest record, children after
/// their parents, stops at the tip although it commits no position, and
/// rewrites only what runs committed.
#[test]
fn a_replay_reads_a_resharded_stream_up_to_the_committed_positions() {
    let stream = Stream::new(2);
    let g = stream_of(67, 1200);
    let (first, second) = g.records.split_at(g.records.len() / 2);
    stream.put(first);
    stream.split();
    stream.put(second);
    let dir = scratch();
    let manifest = manifest(dir.path(), &stream, "");
    run_to_tip(&manifest, None);
    let db = dir.path().join("out.db");
    let before = table_state(&db, "orders_cdc");

    // Changes the runs have not read, and a transform that tags rows.
    let unread = stream_of(68, 300).records;
    stream.put(&unread);
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "target = \"orders_cdc\"\n",
        &format!(
            "target = \"orders_cdc\"\ntransform = \"{}\"\n[tables.settings]\ntag = \"v2\"\n",
            env!("SLUICE_TEST_FAULTS_WASM")
        ),
    );
    std::fs::write(&manifest, text).unwrap();
    let (summary, log) = to_the_end(&["replay", "--table", "orders"], &manifest, None);
    assert!(count(&summary, "not replayed") >= unread.len() as u64, "{summary}");
    assert_parents_first(&[log], 2);
    assert_eq!(table_state(&db, "orders_cdc"), before, "nothing past the committed positions");
    let tagged = crate::util::scalar(&db, "SELECT count(*) FROM orders_cdc WHERE tag = 'v2'");
    assert_eq!(tagged, before.len() as i64);

    let (rest, _) = run_to_tip(&manifest, None);
    assert_eq!(
        count(&rest, "records read"),
        unread.len() as u64,
        "the run reads what no run committed, once"
    );
}

#[test]
fn enhanced_fan_out_reads_every_shard_and_follows_a_split() {
    let stream = Stream::new(2);
    let g = stream_of(66, 1200);
    let (first, second) = g.records.split_at(g.records.len() / 2);
    stream.put(first);
    stream.split();
    stream.put(second);
    let dir = scratch();
    let (summary, log) = run_to_tip(&manifest(dir.path(), &stream, "consumer = \"sluice-test\""), None);
    assert!(log.contains("registered the enhanced fan-out consumer"), "{log}");
    assert_eq!(count(&summary, "records read"), g.records.len() as u64);
    assert_latest_state(dir.path(), &g);
    assert_parents_first(&[log], 2);
}

#[test]
fn throttling_expired_iterators_and_transient_errors_are_ridden_out() {
    let stream = Stream::new(2);
    let g = stream_of(63, 600);
    stream.put(&g.records);
    let dir = scratch();
    let faults =
        "kinesis::get_records=2*return(throttled)->1*off->1*return(expired)->1*off->1*return(transient)";
    let (summary, log) = run_to_tip(&manifest(dir.path(), &stream, ""), Some(faults));
    assert!(log.contains("GetRecords: read limit exceeded; retrying"), "{log}");
    assert!(log.contains("shard iterator expired; renewing it"), "{log}");
    assert!(log.contains("injected fault; retrying"), "{log}");
    // An expired iterator is renewed after the last *committed* record, so a
    // few records may be read twice; the ordering-safe upsert absorbs them.
    assert!(count(&summary, "records read") >= g.records.len() as u64, "{summary}");
    assert_latest_state(dir.path(), &g);
}

#[test]
fn reading_through_an_assumed_role_uses_sts() {
    let stream = Stream::new(1);
    let g = stream_of(64, 200);
    stream.put(&g.records);
    let dir = scratch();
    let role = "role_arn = \"arn:aws:iam::123456789012:role/cross-account-reader\"";
    run_to_tip(&manifest(dir.path(), &stream, role), None);
    assert_latest_state(dir.path(), &g);

    // With STS out of reach the same manifest fails: the role is really used.
    let other = scratch();
    let out = sluice_k()
        .arg("run")
        .arg(manifest(other.path(), &stream, role))
        .arg("--exit-when-caught-up")
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Waits until a run has committed something to `db`, for at most 60 s.
fn wait_for_a_commit(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.exists() || crate::util::scalar(db, "SELECT count(*) FROM _sluice_checkpoints") == 0 {
        assert!(Instant::now() < deadline, "nothing committed in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_finishes_the_batch_commits_and_exits_0() {
    let stream = Stream::new(2);
    let g = stream_of(65, 1500);
    stream.put(&g.records);
    let dir = scratch();
    let manifest = manifest(dir.path(), &stream, "");
    let run =
        sluice_k().arg("run").arg(&manifest).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let db = dir.path().join("out.db");
    wait_for_a_commit(&db);
    let signalled = Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
    assert!(signalled.success());
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a clean stop");
    let first = count(&stdout(&out), "records read");

    let (rest, _) = run_to_tip(&manifest, None);
    assert_eq!(
        first + count(&rest, "records read"),
        g.records.len() as u64,
        "nothing lost, nothing read twice"
    );
    assert_latest_state(dir.path(), &g);
}

/// A run whose sink fails (here: fenced by a newer run) while the stream
/// is quiet stops with the sink's error, instead of waiting for a batch
/// that would find out.
#[test]
fn a_run_fenced_while_the_stream_is_quiet_stops_at_once() {
    let stream = Stream::new(1);
    let g = stream_of(66, 40);
    let (first, last) = g.records.split_at(39);
    stream.put(first);
    let dir = scratch();
    let manifest = manifest(dir.path(), &stream, "");
    let mut older =
        sluice_k().arg("run").arg(&manifest).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let db = dir.path().join("out.db");
    wait_for_a_commit(&db);
    // A newer run takes the writer epoch; the older one's next commit fails.
    run_to_tip(&manifest, None);
    stream.put(last);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = older.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            older.kill().unwrap();
            panic!("the fenced run still waits 20 s after its commit failed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(older.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "a fenced run exits 3: {stderr}");
}
