//! Commit lag: from a change's `ApproximateCreationDateTime` to the commit
//! of its row, at a steady trickle, read from the run's own
//! `sluice_commit_lag_seconds` histogram. Side by side in one run: polling
//! and enhanced fan-out with the defaults, and polling with the defaults
//! sluice had before (1 s between polls of a shard at its tip, batches held
//! open for 1 s).
//!
//! Runs the release `sluice` against kinesis-local on 127.0.0.1 (installed by
//! `./scripts/test` or `./scripts/bench`), into SQLite. Run with
//! `cargo bench -p sluice --bench latency`; `SLUICE_BENCH_SHORT=1` writes for
//! 3 s instead of 20.

#[allow(dead_code)]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::Value;
use sluice::generator::{self, GenOptions, Precision};
use sluice_test_support::{kinesis, unique_name};

use common::Row;

/// Records written per second, in ticks of 100 ms.
const RATE: usize = 300;

struct Scenario {
    name: &'static str,
    source: &'static str,
    batch: &'static str,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario { name: "polling, defaults", source: "", batch: "" },
    Scenario { name: "enhanced fan-out, defaults", source: "consumer = \"sluice-bench\"\n", batch: "" },
    Scenario {
        name: "polling, the old defaults",
        source: "poll_interval_ms = 1000\n",
        batch: "linger_ms = 1000\n",
    },
];

fn main() -> anyhow::Result<()> {
    let seconds = if common::short() { 3 } else { 20 };
    let rt = tokio::runtime::Runtime::new()?;
    let client = kinesis::shared().client();
    println!(
        "commit lag at {RATE} changes/s for {seconds} s, 2 shards, Kinesis (kinesis-local) -> SQLite, \
         from the sluice_commit_lag_seconds histogram\n"
    );
    println!("| reading | p50 | p99 | changes |");
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    for scenario in &SCENARIOS {
        let lag = measure(&rt, &client, scenario, seconds)?;
        println!("| {} | {:.2} s | {:.2} s | {} |", scenario.name, lag.p50, lag.p99, lag.count);
        results.push(lag);
    }
    common::summary(&[
        Row {
            figure: "commit lag p99 (p50), polling".into(),
            measured: format!("{:.2} s ({:.2} s)", results[0].p99, results[0].p50),
            compared: format!("old defaults: {:.2} s ({:.2} s)", results[2].p99, results[2].p50),
            goal: "< 0.5 s",
        },
        Row {
            figure: "commit lag p99 (p50), enhanced fan-out".into(),
            measured: format!("{:.2} s ({:.2} s)", results[1].p99, results[1].p50),
            compared: String::new(),
            goal: "< 0.3 s",
        },
    ]);
    Ok(())
}

struct Lag {
    p50: f64,
    p99: f64,
    count: u64,
}

fn measure(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_kinesis::Client,
    scenario: &Scenario,
    seconds: usize,
) -> anyhow::Result<Lag> {
    let name = unique_name("lag").replace('_', "-");
    rt.block_on(client.create_stream().stream_name(&name).shard_count(2).send())?;
    let arn = kinesis::shared().stream_arn(&name);
    wait_active(rt, client, &arn)?;

    let dir = tempfile::tempdir()?;
    let port = sluice_test_support::free_port();
    let manifest = dir.path().join("lag.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"lag\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{arn}\"\n{}\
             [sink]\ntype = \"sqlite\"\npath = \"lag.db\"\n[batch]\n{}\
             [telemetry]\nmetrics_addr = \"127.0.0.1:{port}\"\n[defaults]\ntarget = \"cdc\"\n",
            scenario.source, scenario.batch
        ),
    )?;
    let mut run = Running(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg(&manifest)
            .env("AWS_ENDPOINT_URL_KINESIS", kinesis::shared().endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", kinesis::shared().region())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Reading starts once the health endpoint answers and shards are listed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while scrape(port).is_none() {
        anyhow::ensure!(Instant::now() < deadline, "sluice did not start serving metrics");
        anyhow::ensure!(run.0.try_wait()?.is_none(), "sluice exited before serving metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));

    let total = RATE * seconds;
    let g = generator::generate(&GenOptions {
        changes: total,
        items: total,
        duplicates: 0.0,
        reorder: 0,
        precision: Precision::Microsecond,
        ..Default::default()
    });
    let per_tick = RATE / 10;
    let started = Instant::now();
    for (tick, chunk) in g.records.chunks(per_tick).enumerate() {
        let at = started + Duration::from_millis(100 * tick as u64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let entries = chunk.iter().map(|r| stamped(r)).collect::<anyhow::Result<Vec<_>>>()?;
        let out = rt.block_on(client.put_records().stream_arn(&arn).set_records(Some(entries)).send())?;
        anyhow::ensure!(out.failed_record_count() == Some(0), "kinesis-local refused records");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(port).unwrap_or_default();
        let buckets = histogram(&text, "sluice_commit_lag_seconds");
        let count = buckets.last().map_or(0, |b| b.1);
        if count >= g.records.len() as u64 {
            return Ok(Lag { p50: quantile(&buckets, 0.5), p99: quantile(&buckets, 0.99), count });
        }
        anyhow::ensure!(Instant::now() < deadline, "only {count} of {} changes committed", g.records.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kills the run however the measurement ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A record as Kinesis Data Streams for DynamoDB would write it now.
fn stamped(record: &str) -> anyhow::Result<PutRecordsRequestEntry> {
    let mut v: Value = serde_json::from_str(record)?;
    let micros = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
    v["dynamodb"]["ApproximateCreationDateTime"] = micros.into();
    Ok(PutRecordsRequestEntry::builder()
        .data(Blob::new(v.to_string()))
        .partition_key(v["dynamodb"]["Keys"].to_string())
        .build()?)
}

/// The cumulative buckets of a histogram: (upper bound, count), `+Inf` last.
fn histogram(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// As Prometheus' `histogram_quantile`: linear within the bucket that holds
/// the quantile.
fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0, |b| b.1) as f64;
    let rank = q * total;
    let mut below = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return below.0;
            }
            let share = (rank - below.1 as f64) / (count - below.1).max(1) as f64;
            return below.0 + (le - below.0) * share;
        }
        below = (le, count);
    }
    f64::NAN
}

fn wait_active(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_kinesis::Client,
    arn: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = rt.block_on(client.describe_stream_summary().stream_arn(arn).send())?;
        if d.stream_description_summary().is_some_and(|s| s.stream_status().as_str() == "ACTIVE") {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the stream is not active after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /metrics`, or `None` while nothing answers it.
fn scrape(port: u16) -> Option<String> {
    sluice_test_support::http_get(port, "/metrics").filter(|(status, _)| *status == 200).map(|(_, body)| body)
}
