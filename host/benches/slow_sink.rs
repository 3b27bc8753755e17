//! Group commit on a slow warehouse: the Redshift sink against the Data API
//! stand-in with every request answered one second late, side by side with
//! group commit off (`max_coalesce = 0`, one transaction per batch), for a
//! stream of 20,000 records and for one record alone (latency at light load).
//! Batches are staged in S3 for COPY, as a production pipeline of this
//! volume would be set up: without `staging`, rows go inline, at most
//! 100 KB of SQL a request.
//!
//! Runs the release `sluice` against the stand-in on PostgreSQL (Debian's
//! packages) and moto for S3, both started by `sluice-test-support`. Run with
//! `cargo bench -p sluice --bench slow_sink`; `SLUICE_BENCH_SHORT=1` runs
//! 2,000 records at 200 ms a request.

#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use redshift_standin::{Config, StandIn};
use sluice::generator::{self, GenOptions};
use sluice_test_support::{moto, postgres, unique_name};

use common::Row;

struct Run {
    seconds: f64,
    commits: String,
}

fn main() -> anyhow::Result<()> {
    let (records, latency) =
        if common::short() { (2_000, Duration::from_millis(200)) } else { (20_000, Duration::from_secs(1)) };
    let url = postgres::shared().fresh_database("slowsink");
    let s3 = moto::shared().endpoint();
    let standin = StandIn::start(Config {
        request_latency: latency,
        s3_endpoint: Some(s3.clone()),
        ..Config::new(url)
    })?;
    let bucket = unique_name("stage").replace('_', "-");
    tokio::runtime::Runtime::new()?
        .block_on(moto::shared().s3_client().create_bucket().bucket(&bucket).send())?;
    let g = generator::generate(&GenOptions { changes: records, items: records / 10, ..Default::default() });
    let one = &g.records[..1];
    println!(
        "the Redshift sink, every Data API request answered {} ms late; file source, batches of 500 \
         (the default)\n",
        latency.as_millis()
    );
    let settings = [("", "on (default)"), ("max_coalesce = 0\n", "off")];
    let mut runs = Vec::new();
    for stream in [&g.records[..], one] {
        for (coalesce, _) in settings {
            runs.push(run(&standin, &bucket, stream, coalesce)?);
        }
    }
    // A run of one record is all start-up (DDL, checkpoints, the fence):
    // what a stream's run takes beyond it is the records' own time.
    let rate = |stream: &Run, alone: &Run| g.records.len() as f64 / (stream.seconds - alone.seconds);
    println!(
        "| group commit | {} records | records/s after start-up | batches, commits | one record |",
        g.records.len()
    );
    println!("|---|---|---|---|---|");
    for (i, (_, setting)) in settings.iter().enumerate() {
        let (stream, alone) = (&runs[i], &runs[i + 2]);
        println!(
            "| {setting} | {:.1} s | {:.0} | {} | {:.1} s |",
            stream.seconds,
            rate(stream, alone),
            stream.commits,
            alone.seconds
        );
    }
    common::summary(&[
        Row {
            figure: format!("slow sink ({} ms a request), {} records", latency.as_millis(), g.records.len()),
            measured: format!("{:.0} rec/s after start-up ({})", rate(&runs[0], &runs[2]), runs[0].commits),
            compared: format!(
                "group commit off: {:.0} rec/s ({})",
                rate(&runs[1], &runs[3]),
                runs[1].commits
            ),
            goal: ">= 20,000 rec/s",
        },
        Row {
            figure: "slow sink, one record alone".into(),
            measured: format!("{:.1} s", runs[2].seconds),
            compared: format!("group commit off: {:.1} s", runs[3].seconds),
            goal: "unchanged",
        },
    ]);
    Ok(())
}

/// One run of `records` into a fresh schema; its wall time and the
/// summary's "(N batches, M commits)".
fn run(standin: &StandIn, bucket: &str, records: &[String], batch: &str) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("stream.jsonl"), records.join("\n") + "\n")?;
    let schema = unique_name("slow");
    let manifest = dir.path().join("slow.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"slow\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n\
             [sink]\ntype = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"bench\"\n\
             secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:bench\"\nschema = \"{schema}\"\n\
             iam_role = \"arn:aws:iam::123456789012:role/copy\"\nstaging = \"s3://{bucket}/sluice/\"\n\
             [batch]\n{batch}[defaults]\ntarget = \"cdc\"\n"
        ),
    )?;
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&manifest)
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", standin.endpoint())
        .env("AWS_ENDPOINT_URL_S3", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "the run failed: {}", String::from_utf8_lossy(&out.stderr));
    let commits = stdout
        .lines()
        .find_map(|l| Some(l.split_once(" (")?.1.split_once(')')?.0.to_owned()))
        .unwrap_or_default();
    Ok(Run { seconds, commits })
}
