//! Several workers sharing one stream through a lease table in DynamoDB
//! (`[coordination]`), on kinesis-local and moto's DynamoDB: the shards
//! are spread over the workers, follow a split and a merge, move to the
//! others when a worker is killed, stopped or paused, and a worker added
//! mid-run takes its share. Every change ends as one process would leave it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice::coordination::leases::{Lease, LeaseTable};
use sluice::generator;
use sluice_test_support::{free_port, http_get, moto, postgres, unique_name};

use crate::export::{Export, a_stream_around_an_export, expected_live, full_lines, live, workload};
use crate::kinesis::{Stream, sluice_k, stream_of};
use crate::redshift::Warehouse;
use crate::util::{
    assert_same_items, canonical_states, expected_soft, pg_state, run_ok, runtime, scratch, stdout,
    table_state,
};

/// How long a lease lasts unrenewed in these tests.
const LEASE_SECS: u64 = 3;

/// How long a stolen shard's old holder may still read it: until its next
/// renewal, a third of a lease duration, plus a second for the lease
/// table's answer and the reader's abort on a busy machine.
const TAKEOVER_WINDOW: f64 = LEASE_SECS as f64 / 3.0 + 1.0;

/// A pipeline several workers run, each with its own manifest (only
/// `worker_id` differs) and log.
struct Shared {
    dir: tempfile::TempDir,
    table: String,
    stream: Stream,
    /// The manifest's `[source]`, `[[tables]]` and `[coordination]` settings.
    source: String,
    tables: String,
    coordination: String,
    sink: String,
    /// More of the workers' environment (a stand-in's endpoint).
    env: Vec<(&'static str, String)>,
    workers: BTreeMap<String, Child>,
    /// When each worker that ended was killed or exited (seconds of the day, UTC).
    ended: BTreeMap<String, f64>,
}

impl Shared {
    /// Workers reading a new stream of `shards` shards.
    fn new(shards: i32, sink: &str) -> Self {
        let stream = Stream::new(shards);
        let source = format!("type = \"kinesis\"\nstream_arn = \"{}\"\npoll_interval_ms = 200", stream.arn);
        Shared::reading(stream, source, "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"", sink)
    }

    fn reading(stream: Stream, source: String, tables: &str, sink: &str) -> Self {
        Shared {
            dir: scratch(),
            table: unique_name("leases").replace('_', "-"),
            stream,
            source,
            tables: tables.to_owned(),
            coordination: String::new(),
            sink: sink.to_owned(),
            env: Vec::new(),
            workers: BTreeMap::new(),
            ended: BTreeMap::new(),
        }
    }

    fn manifest(&self, worker: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{worker}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"shared\"\n[source]\n{}\n\
                 [sink]\n{}\n[batch]\nmax_records = 100\nmax_wait_ms = 200\n\
                 [coordination]\ntype = \"dynamodb\"\ntable = \"{}\"\nworker_id = \"{worker}\"\n\
                 lease_duration = \"{LEASE_SECS}s\"\n{}\n\
                 {}\n",
                self.source, self.sink, self.table, self.coordination, self.tables
            ),
        )
        .unwrap();
        path
    }

    /// `sluice` pointed at kinesis-local and moto's DynamoDB.
    fn sluice(&self) -> Command {
        let mut cmd = sluice_k();
        cmd.env("AWS_ENDPOINT_URL_DYNAMODB", moto::dynamodb().endpoint());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn start(&mut self, worker: &str, failpoints: Option<&str>) {
        self.start_with(worker, failpoints, &[]);
    }

    fn start_with(&mut self, worker: &str, failpoints: Option<&str>, args: &[&str]) {
        let log = std::fs::File::create(self.log_path(worker)).unwrap();
        let mut cmd = self.sluice();
        cmd.arg("run").args(args).arg(self.manifest(worker)).stdout(Stdio::null()).stderr(log);
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        self.workers.insert(worker.to_owned(), cmd.spawn().unwrap());
    }

    fn log_path(&self, worker: &str) -> PathBuf {
        self.dir.path().join(format!("{worker}.log"))
    }

    fn log(&self, worker: &str) -> String {
        std::fs::read_to_string(self.log_path(worker)).unwrap_or_default()
    }

    fn signal(&self, worker: &str, signal: &str) {
        let pid = self.workers[worker].id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// Stops a worker with SIGTERM; it must exit 0.
    fn stop(&mut self, worker: &str) {
        self.signal(worker, "-TERM");
        let mut child = self.workers.remove(worker).unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(30));
        self.ended.insert(worker.to_owned(), now());
        assert!(status.success(), "{worker} exited with {status}:\n{}", self.log(worker));
    }

    fn kill(&mut self, worker: &str) {
        let mut child = self.workers.remove(worker).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.ended.insert(worker.to_owned(), now());
    }

    /// Every running worker's log, for a failure's message.
    fn logs(&self) -> String {
        let logs: Vec<String> = self.workers.keys().map(|w| format!("--- {w}\n{}", self.log(w))).collect();
        logs.join("\n")
    }

    /// Waits until `worker`'s log says `text`.
    fn wait_for_log(&self, worker: &str, text: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log(worker).contains(text) {
            if Instant::now() > deadline {
                panic!("{what} did not happen within 60 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// When `worker` read each shard or data file, from its log: (key,
    /// from, to), in seconds of the day. A span ends when the lease moved,
    /// when the worker started its run again, or when it ended.
    fn spans(&self, worker: &str) -> Vec<(String, f64, f64)> {
        let (mut open, mut spans) = (BTreeMap::<String, f64>::new(), Vec::new());
        for line in self.log(worker).lines() {
            let Some(at) = line.get(11..26).and_then(seconds_of_day) else { continue };
            let shard = ["shard=\"", "file=\""]
                .iter()
                .find_map(|field| line.split(field).nth(1).and_then(|rest| rest.split('"').next()));
            if line.contains("reading shard under its lease")
                || line.contains("reading data file under its lease")
            {
                open.insert(shard.unwrap().to_owned(), at);
            } else if line.contains("stopped reading: the lease moved")
                || line.contains("stopped reading the data file: the lease moved")
            {
                let shard = shard.unwrap();
                spans.push((shard.to_owned(), open.remove(shard).unwrap(), at));
            } else if line.contains("reading on from what is committed") {
                spans.extend(std::mem::take(&mut open).into_iter().map(|(shard, from)| (shard, from, at)));
            }
        }
        let end = self.ended.get(worker).copied().unwrap_or(f64::INFINITY);
        spans.extend(open.into_iter().map(|(shard, from)| (shard, from, end)));
        spans
    }

    /// No shard was read by two workers at once for longer than `window`.
    fn assert_read_by_one_at_a_time(&self, workers: &[&str], window: f64) {
        let all: Vec<(&str, (String, f64, f64))> =
            workers.iter().flat_map(|w| self.spans(w).into_iter().map(move |span| (*w, span))).collect();
        let mut longest = 0.0f64;
        for (a, (shard, from_a, to_a)) in &all {
            for (b, (_, from_b, to_b)) in all.iter().filter(|(b, (other, ..))| b != a && other == shard) {
                let overlap = to_a.min(*to_b) - from_a.max(*from_b);
                assert!(overlap <= window, "{a} and {b} both read {shard} for {overlap:.2} s");
                longest = longest.max(overlap);
            }
        }
        eprintln!("the longest time two workers read one shard: {longest:.2} s (window {window:.2} s)");
    }

    /// The leases as stored.
    fn leases(&self) -> Vec<Lease> {
        let table = LeaseTable::new(moto::dynamodb().dynamodb_client(), &self.table, "test");
        runtime().block_on(table.all()).unwrap_or_default()
    }

    /// How many open (not ended) leases each worker holds.
    fn holders(&self) -> BTreeMap<String, usize> {
        let mut held = BTreeMap::new();
        for lease in self.leases().iter().filter(|l| !l.ended()) {
            *held.entry(lease.owner.clone().unwrap_or_default()).or_default() += 1;
        }
        held
    }

    /// Waits until `done` holds of the open leases' holders; returns how long it took.
    fn wait_for_holders(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&BTreeMap<String, usize>) -> bool,
    ) -> Duration {
        let began = Instant::now();
        loop {
            let holders = self.holders();
            if done(&holders) {
                return began.elapsed();
            }
            if began.elapsed() > Duration::from_secs(secs) {
                panic!("{what} did not happen within {secs} s; holders: {holders:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for child in self.workers.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Now, in seconds of the day (UTC), as the logs' timestamps say it.
fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() % 86_400.0
}

/// "HH:MM:SS.ffffff" in seconds.
fn seconds_of_day(time: &str) -> Option<f64> {
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            panic!("a worker did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `orders_cdc` in the SQLite file holds exactly the expected items.
fn wait_for_sqlite(shared: &Shared, g: &generator::Generated) {
    let db = shared.dir.path().join("out.db");
    let expected = expected_soft(&g.expected, &["orders"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if db.exists() && table_state(&db, "orders_cdc") == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_same_items(&table_state(&db, "orders_cdc"), &expected);
}

/// Waits until `orders_cdc` in PostgreSQL holds exactly the expected items.
fn wait_for_postgres(url: &str, g: &generator::Generated) {
    let expected = canonical_states(expected_soft(&g.expected, &["orders"]));
    let deadline = Instant::now() + Duration::from_secs(120);
    while pg_state(url, "orders_cdc") != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_same_items(&pg_state(url, "orders_cdc"), &expected);
}

/// Each of `workers` holds a fair share of `shards` open leases.
fn fair(holders: &BTreeMap<String, usize>, workers: &[&str], shards: usize) -> bool {
    let most = shards.div_ceil(workers.len());
    holders.values().sum::<usize>() == shards
        && holders.len() == workers.len()
        && workers.iter().all(|w| holders.get(*w).is_some_and(|n| *n >= shards / workers.len() && *n <= most))
}

#[test]
fn three_workers_share_eight_shards_through_a_split_and_a_merge() {
    let mut shared = Shared::new(8, "type = \"sqlite\"\npath = \"out.db\"");
    let g = stream_of(81, 3000);
    let thirds: Vec<&[String]> = g.records.chunks(g.records.len().div_ceil(3)).collect();
    let port = free_port();
    shared.start_with("w1", None, &["--metrics-addr", &format!("127.0.0.1:{port}")]);
    shared.start("w2", None);
    shared.start("w3", None);
    shared.wait_for_holders(60, "three workers sharing eight shards", |h| fair(h, &["w1", "w2", "w3"], 8));
    let metrics = http_get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    assert!(metrics.contains("sluice_leases_held{worker=\"w1\"} "), "{metrics}");

    shared.stream.put(thirds[0]);
    shared.stream.split();
    shared.stream.put(thirds[1]);
    shared.stream.merge();
    shared.stream.put(thirds[2]);
    wait_for_sqlite(&shared, &g);

    // The split's parent and the merge's two parents are ended; the eight
    // open shards are still shared fairly.
    let leases = shared.leases();
    assert_eq!(leases.len(), 8 + 2 + 1, "{leases:?}");
    assert_eq!(leases.iter().filter(|l| l.ended()).count(), 3, "{leases:?}");
    shared.wait_for_holders(30, "the eight open shards shared", |h| fair(h, &["w1", "w2", "w3"], 8));
    for w in ["w1", "w2", "w3"] {
        shared.stop(w);
    }
    shared.assert_read_by_one_at_a_time(&["w1", "w2", "w3"], TAKEOVER_WINDOW);
    // SIGTERM gave every open lease back.
    let leases = shared.leases();
    assert!(leases.iter().filter(|l| !l.ended()).all(|l| l.owner.is_none()), "{leases:?}");

    // `status` shows the leases, and the totals of every worker added up.
    let status = stdout(&run_ok(shared.sluice().arg("status").arg(shared.manifest("w1"))));
    assert!(status.contains(&format!("leases in {}", shared.table)), "{status}");
    for lease in &leases {
        assert!(status.contains(&format!("{}  owner", lease.key)), "{status}");
    }
    let read: u64 = status
        .lines()
        .find(|l| l.trim_start().starts_with("orders "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no records line:\n{status}"));
    // Records read again after a lease moved count again.
    assert!(read >= g.records.len() as u64, "{read} records read, of {}:\n{status}", g.records.len());
    let json = stdout(&run_ok(shared.sluice().args(["status", "--json"]).arg(shared.manifest("w1"))));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["leases"].as_array().map(Vec::len), Some(leases.len()), "{json}");
    assert_eq!(json["records"]["orders"]["read"].as_u64(), Some(read), "{json}");
}

#[test]
fn shards_move_on_when_a_worker_is_killed_stopped_or_added() {
    let mut shared = Shared::new(4, "type = \"sqlite\"\npath = \"out.db\"");
    let g = stream_of(82, 2000);
    let (first, second) = g.records.split_at(g.records.len() / 2);
    let w2_metrics = free_port();
    shared.start("w1", None);
    shared.start_with("w2", None, &["--metrics-addr", &format!("127.0.0.1:{w2_metrics}")]);
    shared.wait_for_holders(60, "two workers sharing four shards", |h| fair(h, &["w1", "w2"], 4));
    shared.stream.put(first);

    // Killed: its leases expire (a lease duration unrenewed), then move.
    shared.kill("w1");
    let took = shared.wait_for_holders(30, "w2 taking w1's shards", |h| h.get("w2") == Some(&4));
    assert!(took >= Duration::from_secs(LEASE_SECS - 1), "taken after {took:?}, before they expired");

    // Added: it steals its share, one lease at a time.
    shared.start("w3", None);
    shared.wait_for_holders(60, "w3 taking its share", |h| fair(h, &["w2", "w3"], 4));
    // w2 reports how far behind it is only for the shards it still reads.
    let leases = shared.leases();
    let reported = |shard: &str| {
        let metrics = http_get(w2_metrics, "/metrics").map(|(_, body)| body).unwrap_or_default();
        metrics.contains(&format!("sluice_source_behind_milliseconds{{shard=\"{shard}\"}}"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for lease in leases.iter().filter(|l| l.owner.as_deref() == Some("w3")) {
        while reported(&lease.key) {
            assert!(Instant::now() < deadline, "w2 still reports {} 10 s after it moved", lease.key);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Stopped: it gives its leases back, and w3 takes them well before
    // they would have expired.
    let stopping = Instant::now();
    shared.stop("w2");
    shared.wait_for_holders(30, "w3 taking w2's shards", |h| h.get("w3") == Some(&4));
    let moved = stopping.elapsed();
    assert!(moved < Duration::from_secs(LEASE_SECS), "w2's shards moved after {moved:?}");
    eprintln!("takeover: {took:.1?} after a SIGKILL, {moved:.1?} after a SIGTERM (lease {LEASE_SECS} s)");

    shared.stream.put(second);
    wait_for_sqlite(&shared, &g);
    shared.stop("w3");
    shared.assert_read_by_one_at_a_time(&["w1", "w2", "w3"], TAKEOVER_WINDOW);
}

/// A worker paused (SIGSTOP) past its lease, holding a batch read under
/// it, is resumed after another worker took the shard: the batch's commit
/// is refused, the worker still stops cleanly, and the pipeline ends as one
/// process would leave it.
#[test]
fn a_worker_paused_past_its_lease_cannot_commit_after_the_new_holder() {
    let url = postgres::shared().fresh_database("leases");
    let sink = format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\"");
    paused_past_its_lease(Shared::new(2, &sink), &url);
}

/// The same into Redshift (the Data API stand-in), its batches staged in S3:
/// the claim and every request's first statement check the lease counters.
#[test]
fn into_redshift_a_worker_paused_past_its_lease_cannot_commit_after_the_new_holder() {
    let w = Warehouse::new();
    let mut shared = Shared::new(2, &w.sink(&w.staging()));
    shared.env.push(("AWS_ENDPOINT_URL_REDSHIFT_DATA", w.standin.endpoint()));
    shared.env.push(("AWS_ENDPOINT_URL_S3", moto::shared().endpoint()));
    paused_past_its_lease(shared, &w.url);
}

/// Two workers on two shards; w1, paused holding a batch until w2 took its
/// shard, has that batch refused once resumed; `url` is where the sink's
/// rows end up.
fn paused_past_its_lease(mut shared: Shared, url: &str) {
    let g = stream_of(83, 600);
    // w1 waits 4 s before each write: long enough to be paused holding a batch.
    shared.start("w1", Some("pipeline::before_write=sleep(4000)"));
    shared.start("w2", None);
    shared.wait_for_holders(60, "two workers sharing two shards", |h| fair(h, &["w1", "w2"], 2));
    shared.stream.put(&g.records);
    std::thread::sleep(Duration::from_millis(1500));
    shared.signal("w1", "-STOP");
    shared.wait_for_holders(30, "w2 taking the paused worker's shard", |h| h.get("w2") == Some(&2));
    std::thread::sleep(Duration::from_secs(2));
    // Resumed and told to stop at once: it finishes the batch in hand, whose
    // commit is refused, and still stops cleanly, for the batch was w2's.
    shared.signal("w1", "-CONT");
    shared.stop("w1");
    shared.wait_for_log("w1", "moved to another worker", "w1's late commit refused");
    wait_for_postgres(url, &g);
    shared.stop("w2");
}

/// The whole story on one 8-shard stream into PostgreSQL: three workers, a
/// split and a merge, one killed, a fourth added, one paused past its lease
/// (its late commit refused) and one stopped; every change ends as one
/// process would leave it, and no shard is read by two workers at once
/// beyond the takeover window.
#[test]
fn workers_come_and_go_through_a_resharding_and_every_change_arrives_once() {
    let url = postgres::shared().fresh_database("leases");
    let sink = format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\"");
    let mut shared = Shared::new(8, &sink);
    let g = stream_of(84, 3000);
    let parts: Vec<&[String]> = g.records.chunks(g.records.len().div_ceil(3)).collect();
    shared.start("w1", None);
    shared.start("w2", None);
    // w3 waits 4 s before each write, so that it is paused holding a batch.
    shared.start("w3", Some("pipeline::before_write=sleep(4000)"));
    shared.wait_for_holders(60, "three workers sharing eight shards", |h| fair(h, &["w1", "w2", "w3"], 8));

    shared.stream.put(parts[0]);
    shared.stream.split();
    shared.stream.put(parts[1]);
    shared.kill("w1");
    shared.stream.merge();
    shared.wait_for_holders(30, "w1's shards taken", |h| !h.contains_key("w1") && !h.contains_key(""));
    shared.start("w4", None);
    shared.wait_for_holders(60, "w4 taking its share", |h| h.get("w4").is_some_and(|n| *n >= 2));

    shared.stream.put(parts[2]);
    std::thread::sleep(Duration::from_millis(1500));
    shared.signal("w3", "-STOP");
    shared.wait_for_holders(30, "the paused w3's shards taken", |h| {
        !h.contains_key("w3") && !h.contains_key("")
    });
    std::thread::sleep(Duration::from_secs(2));
    shared.signal("w3", "-CONT");
    shared.wait_for_log("w3", "moved to another worker", "w3's late commit refused");
    shared.stop("w2");

    wait_for_postgres(&url, &g);
    shared.stop("w3");
    shared.stop("w4");
    // w3 did not read while it was paused, though its spans say so.
    shared.assert_read_by_one_at_a_time(&["w1", "w2", "w4"], TAKEOVER_WINDOW);
}

/// A coordinated worker refuses `--exit-when-caught-up`: other workers
/// may still hand it shards.
#[test]
fn a_coordinated_worker_runs_until_stopped() {
    let shared = Shared::new(1, "type = \"sqlite\"\npath = \"out.db\"");
    let out = sluice_k()
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto::dynamodb().endpoint())
        .args(["run", "--exit-when-caught-up"])
        .arg(shared.manifest("w1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("runs until it is stopped"), "{stderr}");
}

/// A lease table that accepts connections and never answers fails the
/// start within seconds, naming the table: the SDK sets no read timeout,
/// and a worker waiting forever on its lease table would renew nothing.
#[test]
fn a_lease_table_that_never_answers_fails_the_start_within_seconds() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let shared = Shared::new(1, "type = \"sqlite\"\npath = \"out.db\"");
    let mut worker = sluice_k()
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .arg("run")
        .arg(shared.manifest("w1"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = wait_exit(&mut worker, Duration::from_secs(30));
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(took < Duration::from_secs(20), "failed after {took:?}: {stderr}");
    assert!(stderr.contains(&format!("describing lease table {}", shared.table)), "{stderr}");
    drop(silent);
}

/// Three workers load one export, its data files leased like shards: one
/// is killed holding files it never committed, and the others load them
/// (stolen, or taken once expired).
/// The stream is read only once every file is loaded, from exportTime -
/// margin; a worker started afterwards neither loads the export again nor
/// starts the stream over.
#[test]
fn workers_share_an_export_then_hand_over_to_the_stream_once() {
    let (stream, g, export_time) = a_stream_around_an_export(2, 85);
    let tables = "[[tables]]\nsource = \"customers\"\ntarget = \"customers_cdc\"\nkeys = [\"sk\", \"pk\"]";
    let mut shared = Shared::reading(stream, String::new(), tables, "type = \"sqlite\"\npath = \"out.db\"");
    // Nine data files and an empty one.
    let folder =
        Export::new(&full_lines(&g, export_time), 9, export_time, false).write_local(shared.dir.path());
    shared.source = format!(
        "type = \"export\"\npath = \"{}\"\n\
         then = {{ type = \"kinesis\", stream_arn = \"{}\", margin = \"1s\", poll_interval_ms = 200 }}",
        folder.strip_prefix(shared.dir.path()).unwrap().display(),
        shared.stream.arn
    );
    shared.coordination = "max_leases_per_worker = 4".into();
    // w1 takes four files and waits 30 s before its first write: it is
    // killed holding them, nothing of them committed.
    shared.start("w1", Some("pipeline::before_write=sleep(30000)"));
    shared.wait_for_holders(60, "w1 taking four files", |h| h.get("w1") == Some(&4));
    shared.start("w2", None);
    shared.start("w3", None);
    for w in ["w2", "w3"] {
        shared.wait_for_log(w, "joined the lease table", "w2 and w3 joining");
    }
    shared.kill("w1");

    let db = shared.dir.path().join("out.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(db.exists() && live(&db) == expected_live(&g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(live(&db), expected_live(&g), "the poison record must not be read\n{}", shared.logs());
    let leases = shared.leases();
    let (files, shards): (Vec<&Lease>, Vec<&Lease>) = leases.iter().partition(|l| l.key.contains('/'));
    assert_eq!(files.len(), 10, "{leases:?}");
    assert!(files.iter().all(|l| l.ended()), "{leases:?}");
    assert_eq!(shards.len(), 2, "{leases:?}");
    for w in ["w2", "w3"] {
        assert!(shared.log(w).contains("export loaded; shards without a checkpoint are read from"));
    }
    shared.stop("w2");
    shared.stop("w3");
    shared.assert_read_by_one_at_a_time(&["w1", "w2", "w3"], TAKEOVER_WINDOW);

    // A worker started now goes straight to the stream, where the others stopped.
    shared.start("w4", None);
    shared.wait_for_holders(60, "w4 taking both shards", |h| h.get("w4") == Some(&2));
    std::thread::sleep(Duration::from_secs(2));
    shared.stop("w4");
    let log = shared.log("w4");
    assert!(!log.contains("reading data file under its lease"), "{log}");
    let starts: Vec<&str> = log.lines().filter(|l| l.contains("reading shard under its lease")).collect();
    assert_eq!(starts.len(), 2, "{log}");
    assert!(starts.iter().all(|l| l.contains("from=After(")), "{starts:?}");
    assert_eq!(live(&db), expected_live(&g));
}

/// Without a stream to hand over to, workers sharing an export each exit 0
/// once every data file is loaded, whoever loaded it.
#[test]
fn workers_sharing_an_export_alone_exit_once_it_is_loaded() {
    let g = workload(86, 2400, 1_767_225_600_000_000);
    let tables = "[[tables]]\nsource = \"customers\"\ntarget = \"customers_cdc\"\nkeys = [\"sk\", \"pk\"]";
    let mut shared =
        Shared::reading(Stream::new(1), String::new(), tables, "type = \"sqlite\"\npath = \"out.db\"");
    let folder = Export::new(&full_lines(&g, u64::MAX), 6, 1_767_225_700_000_000, false)
        .write_local(shared.dir.path());
    shared.source = format!(
        "type = \"export\"\npath = \"{}\"",
        folder.strip_prefix(shared.dir.path()).unwrap().display()
    );
    shared.coordination = "max_leases_per_worker = 3".into();
    shared.start("w1", Some("pipeline::before_write=sleep(2000)"));
    shared.wait_for_holders(60, "w1 taking three files", |h| h.get("w1") == Some(&3));
    shared.start("w2", None);
    for w in ["w1", "w2"] {
        let mut child = shared.workers.remove(w).unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(60));
        assert!(status.success(), "{w} exited with {status}:\n{}", shared.log(w));
        assert!(shared.log(w).contains("reading data file under its lease"), "{}", shared.log(w));
    }
    assert_eq!(live(&shared.dir.path().join("out.db")), expected_live(&g));
    assert!(shared.leases().iter().all(|l| l.ended()), "{:?}", shared.leases());
}

/// Starting at `latest`, a coordinated pipeline passes over the history of
/// shards already closed, as one process does: the closed shard gets no
/// lease, and its children are read from the tip, not from their oldest
/// record.
#[test]
fn a_latest_start_passes_over_shards_closed_before_it() {
    let mut shared = Shared::new(1, "type = \"sqlite\"\npath = \"out.db\"");
    let g = stream_of(87, 600);
    let (history, new) = g.records.split_at(300);
    shared.stream.put(&history[..150]);
    shared.stream.split();
    shared.stream.put(&history[150..]);
    shared.source += "\nstart = \"latest\"";
    shared.start("w1", None);
    shared.wait_for_holders(60, "w1 taking the two children", |h| h.get("w1") == Some(&2));
    shared.wait_for_log("w1", "reading shard under its lease", "w1 reading");
    // The readers ask for their iterators at the tip as they start.
    std::thread::sleep(Duration::from_secs(2));
    shared.stream.put(new);

    let read = || {
        let status = stdout(&run_ok(shared.sluice().args(["status", "--json"]).arg(shared.manifest("w1"))));
        let json: serde_json::Value = serde_json::from_str(&status).unwrap();
        json["records"]["orders"]["read"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while read() < new.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(read(), new.len() as u64, "the history before the start was read:\n{}", shared.logs());
    let leases = shared.leases();
    assert_eq!(leases.len(), 2, "the closed shard has a lease: {leases:?}");
    shared.stop("w1");
}
