//! Group commit on a slow warehouse: the Redshift sink against the Data API
//! stand-in with every request answered one second late, side by side with
//! group commit off (`max_coalesce = 0`, one transaction per batch), for a
//! stream of 20,000 records and for one record alone (latency at light load);
//! then a stream ten times larger with the default `max_coalesce` and with
//! larger transactions (`max_coalesce = 50000`), with each run's peak memory.
//! Batches are staged in S3 for COPY, as a production pipeline of this
//! volume would be set up: without `staging`, rows go inline, at most
//! 100 KB of SQL a request.
//!
//! Runs the release `sluice` against the stand-in on PostgreSQL (Debian's
//! packages) and moto for S3, both started by `sluice-test-support`. Run with
//! `cargo bench -p sluice --bench slow_sink`; `SLUICE_BENCH_SHORT=1` runs
//! 2,000 (and 20,000) records at 200 ms a request.

#[allow(dead_code)]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use redshift_standin::{Config, StandIn};
use sluice::generator::{self, GenOptions};
use sluice_test_support::{moto, postgres, unique_name};

use common::Row;

struct Run {
    seconds: f64,
    commits: String,
    peak_mb: f64,
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
    let generate = |changes: usize| {
        generator::generate(&GenOptions { changes, items: changes / 10, ..Default::default() })
    };
    let (g, big) = (generate(records), generate(records * 10));
    let one = &g.records[..1];
    println!(
        "the Redshift sink, every Data API request answered {} ms late; file source, batches of 500 \
         (the default)\n",
        latency.as_millis()
    );
    let (on, off, large) = ("", "max_coalesce = 0\n", "max_coalesce = 50000\n");
    let runs: Vec<(&str, &[String], Run)> = [
        ("on (default)", &g.records[..], on),
        ("off", &g.records[..], off),
        ("on (default)", one, on),
        ("off", one, off),
        ("on (default)", &big.records[..], on),
        ("on, max_coalesce = 50000", &big.records[..], large),
    ]
    .into_iter()
    .map(|(setting, stream, batch)| Ok((setting, stream, run(&standin, &bucket, stream, batch)?)))
    .collect::<anyhow::Result<_>>()?;
    // A run of one record is all start-up (DDL, checkpoints, the fence):
    // what a stream's run takes beyond it is the records' own time.
    let alone = &runs[2].2;
    let rate = |i: usize| runs[i].1.len() as f64 / (runs[i].2.seconds - alone.seconds);
    println!("| group commit | records | time | records/s after start-up | batches, commits | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for (i, (setting, stream, run)) in runs.iter().enumerate() {
        let after = if stream.len() > 1 { format!("{:.0}", rate(i)) } else { "(start-up)".into() };
        println!(
            "| {setting} | {} | {:.1} s | {after} | {} | {:.0} MB |",
            stream.len(),
            run.seconds,
            run.commits,
            run.peak_mb
        );
    }
    let ms = latency.as_millis();
    common::summary(&[
        Row {
            figure: format!("slow sink ({ms} ms a request), {} records", g.records.len()),
            measured: format!("{:.0} rec/s after start-up ({})", rate(0), runs[0].2.commits),
            compared: format!("group commit off: {:.0} rec/s ({})", rate(1), runs[1].2.commits),
            goal: ">= 20,000 rec/s",
        },
        Row {
            figure: format!("slow sink ({ms} ms a request), {} records", big.records.len()),
            measured: format!(
                "max_coalesce = 50000: {:.0} rec/s, peak RSS {:.0} MB ({})",
                rate(5),
                runs[5].2.peak_mb,
                runs[5].2.commits
            ),
            compared: format!(
                "default max_coalesce: {:.0} rec/s, peak RSS {:.0} MB ({})",
                rate(4),
                runs[4].2.peak_mb,
                runs[4].2.commits
            ),
            goal: ">= 20,000 rec/s",
        },
        Row {
            figure: "slow sink, one record alone".into(),
            measured: format!("{:.1} s", alone.seconds),
            compared: format!("group commit off: {:.1} s", runs[3].2.seconds),
            goal: "unchanged",
        },
    ]);
    Ok(())
}

/// One run of `records` into a fresh schema; its wall time, the summary's
/// "(N batches, M commits)" and its peak resident memory.
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
    let output = dir.path().join("summary.txt");
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"));
    sluice
        .arg("run")
        .arg(&manifest)
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", standin.endpoint())
        .env("AWS_ENDPOINT_URL_S3", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("SLUICE_LOG", "error")
        .stdout(Stdio::from(std::fs::File::create(&output)?));
    let (took, peak_kb) = common::measured(sluice)?;
    let stdout = std::fs::read_to_string(&output)?;
    let commits = stdout
        .lines()
        .find_map(|l| Some(l.split_once(" (")?.1.split_once(')')?.0.to_owned()))
        .unwrap_or_default();
    Ok(Run { seconds: took.as_secs_f64(), commits, peak_mb: peak_kb as f64 / 1024.0 })
}
