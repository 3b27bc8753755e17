//! What operators run sluice with: Prometheus metrics and a health check
//! during a real run, JSON logs and summaries, exit codes, the dead-letter
//! limit, and a CLI that behaves in pipes and shells.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice::generator::{self, GenOptions, Precision};

use sluice_test_support::{free_port, http_get as get};

use crate::kinesis::{Stream, sluice_k};
use crate::util::{
    ONE_BATCH_A_COMMIT, POSITIONS_ONLY, count, dump, pipeline, run_ok, scratch, sluice, stdout,
};

/// The value of each sample line of a Prometheus text exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Waits until `done` holds, for at most `secs`, polling every 50 ms.
fn wait_for(secs: u64, what: &str, child: &mut Child, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("{what} did not happen within {secs} s (or the run ended: {:?})", child.try_wait());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kinesis_manifest(dir: &std::path::Path, stream: &Stream, extra: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"ops\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{}\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[batch]\nmax_records = 50\nmax_wait_ms = 200\n\
             [telemetry]\nstall_after = \"1s\"\n{extra}\
             [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n",
            stream.arn
        ),
    )
    .unwrap();
    path
}

fn changes(seed: u64, n: usize) -> generator::Generated {
    generator::generate(&GenOptions {
        changes: n,
        items: 40,
        seed,
        precision: Precision::Microsecond,
        tables: vec!["orders".into()],
        ..Default::default()
    })
}

fn start(manifest: &std::path::Path, port: u16, failpoints: Option<&str>) -> Child {
    let mut cmd: Command = sluice_k();
    cmd.arg("run").arg(manifest).args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let log = std::fs::File::create(manifest.with_file_name("run.log")).unwrap();
    cmd.stdout(Stdio::piped()).stderr(log);
    if let Some(f) = failpoints {
        cmd.env("FAILPOINTS", f);
    }
    cmd.spawn().unwrap()
}

fn finish(mut child: Child) -> String {
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    out
}

fn sigterm(child: &Child) {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
}

#[test]
fn metrics_during_a_stream_run_agree_with_its_summary() {
    let stream = Stream::new(1);
    let g = changes(81, 600);
    stream.put(&g.records);
    // A record without a tableName: dead-lettered.
    stream.put(&[r#"{"dynamodb":{"Keys":{"pk":{"S":"x"}}}}"#.to_owned()]);
    let dir = scratch();
    let manifest = kinesis_manifest(dir.path(), &stream, "");
    let port = free_port();
    let mut run = start(&manifest, port, None);
    let read = (g.records.len() + 1) as f64;
    let total = |m: &HashMap<String, f64>, prefix: &str| -> f64 {
        m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
    };
    let mut scraped = HashMap::new();
    wait_for(60, "every record read and committed", &mut run, || {
        let Some((200, text)) = get(port, "/metrics") else { return false };
        scraped = samples(&text);
        total(&scraped, "sluice_records_read_total") + 1.0 >= read
            && get(port, "/health").is_some_and(|(status, _)| status == 200)
            && dump(&dir.path().join("out.db"), "SELECT count(*) FROM _sluice_dead_letters")[0][0].as_deref()
                == Some("1")
    });
    // Once caught up and idle, /health stays 200 and the counters stand still.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = get(port, "/health").unwrap();
    assert_eq!(status, 200, "idle and caught up is healthy: {body}");
    scraped = samples(&get(port, "/metrics").unwrap().1);
    sigterm(&run);
    let summary = finish(run);

    let m = |name: &str| scraped.get(name).copied().unwrap_or(0.0) as u64;
    assert_eq!(m("sluice_records_read_total{table=\"orders\"}"), g.records.len() as u64);
    assert_eq!(count(&summary, "records read"), g.records.len() as u64 + 1);
    for (kind, label) in
        [("upserted", "rows upserted"), ("deleted", "rows deleted"), ("stale", "stale, not applied")]
    {
        let metric = m(&format!("sluice_rows_applied_total{{target=\"orders_cdc\",kind=\"{kind}\"}}"));
        assert_eq!(metric, count(&summary, label), "{kind}");
    }
    let (_, commits) = crate::util::batches_and_commits(&summary);
    assert_eq!(m("sluice_batches_total"), commits, "{summary}");
    assert_eq!(m("sluice_batch_seconds_count{stage=\"write\"}"), m("sluice_batches_total"));
    assert!(commits > 0);
    assert_eq!(m("sluice_commit_lag_seconds_count"), g.records.len() as u64, "one per stream change");
    assert!(
        scraped.contains_key("sluice_source_behind_milliseconds{shard=\"shardId-000000000000\"}"),
        "{scraped:?}"
    );
    assert_eq!(count(&summary, "dead-lettered"), 1);

    // `status` asks the stream how far each committed position is behind.
    let status: serde_json::Value =
        serde_json::from_slice(&run_ok(sluice_k().args(["status", "--json"]).arg(&manifest)).stdout).unwrap();
    let position = &status["positions"][0];
    assert!(position["partition"].as_str().unwrap().ends_with("/shardId-000000000000"), "{status}");
    assert!(position["behind"]["milliseconds"].is_i64(), "{status}");
}

#[test]
fn health_turns_503_while_the_sink_stalls_and_once_told_to_stop() {
    let stream = Stream::new(1);
    let dir = scratch();
    let manifest = kinesis_manifest(dir.path(), &stream, "");
    let port = free_port();
    // The second commit takes 6 s, against a stall limit of 1 s.
    let mut run = start(&manifest, port, Some("sink::before_commit=1*off->1*sleep(6000)"));
    wait_for(30, "/health answering 200", &mut run, || get(port, "/health").is_some_and(|(s, _)| s == 200));
    let db = dir.path().join("out.db");
    stream.put(&changes(82, 100).records);
    let committed = || dump(&db, "SELECT count(*) FROM _sluice_checkpoints")[0][0].as_deref() != Some("0");
    wait_for(30, "a first commit", &mut run, || db.exists() && committed());
    stream.put(&changes(83, 100).records);
    let mut stalled = String::new();
    wait_for(30, "/health reporting the stall", &mut run, || match get(port, "/health") {
        Some((503, body)) => {
            stalled = body;
            true
        }
        _ => false,
    });
    assert!(stalled.starts_with("stalled: the sink has been writing one batch"), "{stalled}");
    sigterm(&run);
    let (status, body) = get(port, "/health").expect("still finishing the batch");
    assert_eq!((status, body.trim()), (503, "stopping"));
    let summary = finish(run);
    assert!(count(&summary, "records read") > 0, "{summary}");
}

#[test]
fn json_logs_and_a_json_summary_are_one_object_a_line() {
    let dir = scratch();
    let g = changes(83, 200);
    let mut records = g.records.clone();
    records.insert(10, "{\"broken\": ".to_owned());
    // A commit a batch, each logged.
    let tables = format!("{ONE_BATCH_A_COMMIT}[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n");
    let manifest = pipeline(dir.path(), &records, 50, &tables);
    let out = run_ok(
        sluice()
            .args(["--log-format", "json", "run", "--summary", "json"])
            .arg(&manifest)
            .env("SLUICE_LOG", "sluice=debug"),
    );
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
        assert!(!line.contains("Some(") && !line.contains(" { "), "no Debug dumps: {line}");
    }
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["records"], records.len());
    assert_eq!(s["applied"]["dead_lettered"], 1);
    assert_eq!(s["tables"]["orders"]["read"], g.records.len());
    assert!(s["applied"]["targets"]["orders_cdc"]["upserted"].as_u64().unwrap() > 0, "{s}");
    assert!(s["elapsed_seconds"].as_f64().unwrap() > 0.0);
    assert!(s["tables"]["orders"]["transform_seconds"].as_f64().is_some());
}

#[test]
fn past_the_dead_letter_limit_a_run_stops_before_committing_the_batch_and_exits_6() {
    let g = changes(84, 300);
    let junk = |records: &mut Vec<String>, at: usize| {
        for i in 0..5 {
            records.insert(at + i, format!("junk {i}"));
        }
    };
    for (limit, junk_at, committed_line) in [
        // Lines 61-65 are junk: the batch of lines 61-80 would bring 5 > 3.
        ("max_dead_letters = 3", 60, 60),
        // Checked from 100 records read: the batch of lines 141-160 brings
        // 5 of 160, past 1%.
        ("max_dead_letter_ratio = 0.01", 150, 140),
    ] {
        let dir = scratch();
        let mut records = g.records.clone();
        junk(&mut records, junk_at);
        let table = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n";
        let manifest = pipeline(dir.path(), &records, 20, &format!("[run]\n{limit}\n{table}"));
        let out = sluice().arg("run").arg(&manifest).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{limit}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(limit),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let db = dir.path().join("out.db");
        let position = dump(&db, &format!("SELECT position FROM _sluice_checkpoints WHERE {POSITIONS_ONLY}"));
        assert!(
            position[0][0].as_deref().unwrap().ends_with(&format!("\"line\":{committed_line}}}")),
            "{limit}: {position:?}"
        );
        assert_eq!(dump(&db, "SELECT count(*) FROM _sluice_dead_letters")[0][0].as_deref(), Some("0"));

        // Raised, the run resumes with the batch it stopped before.
        let manifest = pipeline(dir.path(), &records, 20, table);
        let rest = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
        assert_eq!(count(&rest, "records read"), (records.len() - committed_line) as u64);
        assert_eq!(count(&rest, "dead-lettered"), 5);
    }
}

#[test]
fn exit_codes_tell_a_bad_manifest_from_a_failed_run() {
    let dir = scratch();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nsourc = 1\n").unwrap();
    for command in ["run", "validate", "status", "replay"] {
        let out = sluice().arg(command).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(5), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A file the manifest names that is not there: also the manifest's problem.
    let manifest =
        pipeline(dir.path(), &[], 10, "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n");
    std::fs::remove_file(dir.path().join("stream.jsonl")).unwrap();
    assert_eq!(sluice().arg("run").arg(&manifest).output().unwrap().status.code(), Some(5));
}

#[test]
fn a_closed_pipe_ends_a_command_quietly_and_completions_are_printed() {
    let dir = scratch();
    let g = changes(85, 3000);
    let manifest = pipeline(dir.path(), &g.records, 500, "[defaults]\ntarget = \"cdc\"\n");
    run_ok(sluice().arg("run").arg(&manifest));
    // Far more than a pipe holds, read by a reader that leaves after one line.
    let script = format!(
        "set -o pipefail; '{}' status --rows 100000 '{}' | head -1",
        env!("CARGO_BIN_EXE_sluice"),
        manifest.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");

    for (shell, needle) in [("bash", "_sluice()"), ("zsh", "#compdef sluice"), ("fish", "complete -c sluice")]
    {
        let script = stdout(&run_ok(sluice().args(["completions", shell])));
        assert!(script.contains(needle) && script.contains("replay"), "{shell}");
    }
}

#[test]
fn status_json_shows_how_far_behind_each_position_is_the_totals_of_every_run_and_dead_letters_newest_first() {
    let dir = scratch();
    let g = changes(86, 400);
    let (first, rest) = g.records.split_at(200);
    let mut first = first.to_vec();
    first.push("junk from the first run".into());
    let table = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n";
    let manifest = pipeline(dir.path(), &first, 50, table);
    let one = stdout(&run_ok(sluice().arg("run").arg(&manifest)));

    // More arrives: the status says how much is unread.
    let mut all = first.clone();
    all.extend_from_slice(rest);
    all.push("junk from the second run".into());
    pipeline(dir.path(), &all, 50, table);
    let unread = all[first.len()..].iter().map(|l| l.len() + 1).sum::<usize>() as u64;
    let status = |m: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&run_ok(sluice().args(["status", "--json"]).arg(m)).stdout).unwrap()
    };
    let s = status(&manifest);
    assert_eq!(s["positions"][0]["behind"]["bytes"], unread, "{s}");
    assert_eq!(s["records"]["orders"]["read"], 200);
    let upserted = s["tables"][0]["all_runs"]["upserted"].as_u64().unwrap();
    assert_eq!(upserted, count(&one, "rows upserted"), "{s}");

    let two = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    let s = status(&manifest);
    assert_eq!(s["positions"][0]["behind"]["bytes"], 0);
    assert_eq!(s["records"]["orders"]["read"], g.records.len(), "totals add up over runs");
    let all_runs = &s["tables"][0]["all_runs"];
    assert_eq!(
        all_runs["upserted"].as_u64().unwrap(),
        count(&one, "rows upserted") + count(&two, "rows upserted")
    );
    assert_eq!(
        all_runs["stale"].as_u64().unwrap(),
        count(&one, "stale, not applied") + count(&two, "stale, not applied")
    );
    assert_eq!(s["dead_letters"]["count"], 2);
    let newest = s["dead_letters"]["newest"][0]["origin"].as_str().unwrap();
    assert_eq!(newest, format!("stream.jsonl:{}", all.len()), "newest first: {s}");
    assert_eq!(s["transforms"][0]["table"], "orders");
}

#[test]
fn a_dry_run_shows_the_next_batch_and_writes_nothing() {
    let dir = scratch();
    let db = dir.path().join("out.db");
    let g = changes(87, 300);
    let mut records = g.records.clone();
    records.insert(105, "junk".into());
    let table = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n";
    let manifest = pipeline(dir.path(), &records, 100, table);
    let fresh = run_ok(sluice().args(["run", "--dry-run", "--summary", "json"]).arg(&manifest));
    let plan: serde_json::Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_eq!(plan["records"], 100);
    assert!(!db.exists(), "a dry run creates nothing");

    // After a run stopped at a dead-letter limit, the dry run shows the
    // batch it stopped before: the junk record among it.
    let limited = pipeline(dir.path(), &records, 100, &format!("[run]\nmax_dead_letters = 0\n{table}"));
    assert_eq!(sluice().arg("run").arg(&limited).output().unwrap().status.code(), Some(6));
    let before =
        (dump(&db, "SELECT * FROM _sluice_checkpoints"), dump(&db, "SELECT count(*) FROM orders_cdc"));
    let next: serde_json::Value = serde_json::from_slice(
        &run_ok(sluice().args(["run", "--dry-run", "--summary", "json"]).arg(&manifest)).stdout,
    )
    .unwrap();
    assert_eq!(next["dead_letters"][0]["origin"], "stream.jsonl:106", "{next}");
    assert!(
        next["rows"].as_array().unwrap().iter().all(|r| r["origin"].as_str().unwrap() > "stream.jsonl:100")
    );
    assert!(next["rows"][0]["new_image"].is_object() || next["rows"][0]["operation"] == "delete");
    let text = stdout(&run_ok(sluice().args(["run", "--dry-run"]).arg(&manifest)));
    assert!(text.contains("nothing is written") && text.contains("dead letter stream.jsonl:106"), "{text}");
    let after =
        (dump(&db, "SELECT * FROM _sluice_checkpoints"), dump(&db, "SELECT count(*) FROM orders_cdc"));
    assert_eq!(after, before, "a dry run writes nothing");
}
