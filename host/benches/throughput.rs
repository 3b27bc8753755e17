//! Throughput, side by side in one run:
//!
//! 1. decoding natively (`ddb-core` compiled into the host),
//! 2. decoding through the `ddb-json` Wasm component, in batches, as the
//!    pipeline calls it (lowering records in and lifting outcomes out included),
//! 3. the same on 1, 2, 4 and 8 instances sharing each batch
//!    (`[guest] threads`): the scaling curve, up to the machine's cores,
//! 4. the whole pipeline: file source, Wasm transform, SQLite sink, with the
//!    default instances (a core left to the sink) and with one per core;
//!    then the same into PostgreSQL (started by `sluice-test-support`) and
//!    into JSON lines files in a local folder,
//! 5. and the seed's per-record logic re-expressed in Python
//!    (`seed_logic.py`: boto3's TypeDeserializer, writing nothing).
//!
//! Run with `cargo bench -p sluice --bench throughput`. `SLUICE_BENCH_CHANGES`
//! sets the stream's size (default 100000 changes);
//! `SLUICE_BENCH_WASM=<path>[:<path>...]` adds your own components to the
//! comparison (e.g. a Rust and a Python guest made by `sluice guest new`).

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use sluice::generator::{self, GenOptions};
use sluice::guest::{GuestLimits, GuestPool, GuestRuntime, TableSettings, TransformRef};
use sluice::record::{Outcome, SourceRecord};
use sluice::sources::ChangeRecords;

use common::Row;
use sluice_test_support::postgres;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;

fn main() -> anyhow::Result<()> {
    let default = if common::short() { 5_000 } else { 100_000 };
    let rounds = if common::short() { 1 } else { 5 };
    let changes = std::env::var("SLUICE_BENCH_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let generated = generator::generate(&GenOptions { changes, items: changes / 10, ..Default::default() });
    let records = generated.records;
    let bytes: usize = records.iter().map(String::len).sum();
    println!(
        "{} stream records, {:.1} MB, {:.0} bytes on average; best of {rounds} rounds\n",
        records.len(),
        bytes as f64 / 1e6,
        bytes as f64 / records.len() as f64
    );

    let native = best_of(rounds, || {
        let mut ok = 0usize;
        for r in &records {
            ok += ddb_core::decode_stream_record(r.as_bytes()).is_ok() as usize;
        }
        assert_eq!(ok, records.len(), "every generated record decodes");
    });

    let mut runtime = GuestRuntime::with_cache(None)?;
    let transform = TransformRef::parse("builtin:ddb-json", ".".as_ref())?;
    let settings =
        TableSettings { source_table: "bench".into(), target_table: "bench".into(), ..Default::default() };
    let stream: std::sync::Arc<str> = "bench".into();
    let mut changes = ChangeRecords::default();
    let mut batches: Vec<Vec<SourceRecord>> = records
        .chunks(BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, r)| changes.record(r.as_bytes().to_vec(), stream.clone(), i.to_string()))
                .collect()
        })
        .collect();
    let mut component = |transform: &TransformRef, threads: usize| -> anyhow::Result<Duration> {
        let guest = runtime.instantiate(transform, settings.clone(), GuestLimits::default())?;
        let mut pool = GuestPool::new(guest, threads);
        Ok(best_of(rounds, || {
            for (n, batch) in batches.iter_mut().enumerate() {
                let outcomes = pool.transform(n as u64, batch).expect("the guest runs");
                assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Fault(_))));
            }
        }))
    };
    let wasm = component(&transform, 1)?;
    let scaling: Vec<(usize, Duration)> =
        [2, 4, 8].into_iter().map(|n| Ok((n, component(&transform, n)?))).collect::<anyhow::Result<_>>()?;
    let custom: Vec<(Duration, String)> = std::env::var("SLUICE_BENCH_WASM")
        .unwrap_or_default()
        .split(':')
        .filter(|path| !path.is_empty())
        .map(|path| Ok((component(&TransformRef::File(path.into()), 1)?, path.to_owned())))
        .collect::<anyhow::Result<_>>()?;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("stream.jsonl"), records.join("\n") + "\n")?;
    // `sink` is the body of the manifest's [sink] table.
    let mut pipeline = |sink: &str, threads: Option<usize>| -> anyhow::Result<(Duration, u64)> {
        let guest = threads.map(|n| format!("[guest]\nthreads = {n}\n")).unwrap_or_default();
        let manifest = dir.path().join("bench.toml");
        std::fs::write(
            &manifest,
            format!(
                "name = \"bench\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n\
                 [sink]\n{sink}\n[batch]\nmax_records = 1000\n{guest}[defaults]\ntarget = \"cdc\"\n"
            ),
        )?;
        let plan = sluice::manifest::load(&manifest)?;
        let summary = sluice::pipeline::run(&plan, &mut runtime, &Default::default())?;
        Ok((summary.elapsed, summary.applied.rows().upserted + summary.applied.rows().deleted))
    };
    let (end_to_end, stored) = pipeline("type = \"sqlite\"\npath = \"bench-default.db\"", None)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (every_core, _) = pipeline("type = \"sqlite\"\npath = \"bench-cores.db\"", Some(cores))?;
    // The other sinks, same stream and defaults: PostgreSQL (Debian's, on
    // this machine) and JSON lines files in a local folder.
    let postgres_url = postgres::shared().fresh_database("throughput");
    let (into_postgres, _) = pipeline(&format!("type = \"postgres\"\nurl = \"{postgres_url}\""), None)?;
    let folder = dir.path().join("files");
    let (into_files, _) =
        pipeline(&format!("type = \"s3\"\npath = {:?}", folder.display().to_string()), None)?;
    let seed = seed_logic(&dir.path().join("stream.jsonl"))?;

    let line = |what: &str, t: Duration| {
        let secs = t.as_secs_f64();
        println!(
            "{what:<34} {:>10.0} records/s {:>8.1} MB/s",
            records.len() as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    };
    line("decode, native (ddb-core)", native);
    line("decode, Wasm component (ddb-json)", wasm);
    for (n, t) in &scaling {
        line(&format!("  the same, {n} instances"), *t);
    }
    for (t, path) in &custom {
        line(path, *t);
    }
    line("file -> Wasm -> SQLite, end to end", end_to_end);
    line(&format!("  the same, {cores} instances"), every_core);
    line("file -> Wasm -> PostgreSQL", into_postgres);
    line("file -> Wasm -> JSON files", into_files);
    line("the seed's logic in Python, 1 core", seed);
    println!(
        "\nWasm takes {:.2}x the native time; the sink stored {stored} rows; {cores} cores",
        wasm.as_secs_f64() / native.as_secs_f64(),
    );
    let rate = |t: Duration| records.len() as f64 / t.as_secs_f64();
    let mb_s = |t: Duration| bytes as f64 / 1e6 / t.as_secs_f64();
    common::summary(&[
        Row {
            figure: format!(
                "file -> Wasm -> SQLite, {:.0}-byte records",
                bytes as f64 / records.len() as f64
            ),
            measured: format!("{:.0} rec/s", rate(end_to_end)),
            compared: format!(
                "{cores} instances: {:.0} rec/s; the seed's logic in Python, writing nothing: {:.0} rec/s",
                rate(every_core),
                rate(seed)
            ),
            goal: ">= 150,000 rec/s",
        },
        Row {
            figure: "file -> Wasm -> SQLite / PostgreSQL / JSON files".into(),
            measured: [end_to_end, into_postgres, into_files].map(|t| format!("{:.0}", rate(t))).join(" / ")
                + " rec/s",
            compared: "same stream and defaults; PostgreSQL on this machine".into(),
            goal: "measured",
        },
        Row {
            figure: "Wasm decode on 1 / 2 / 4 / 8 instances".into(),
            measured: std::iter::once(wasm)
                .chain(scaling.iter().map(|(_, t)| *t))
                .map(|t| format!("{:.0}", rate(t)))
                .collect::<Vec<_>>()
                .join(" / ")
                + " rec/s",
            compared: format!("{cores} cores"),
            goal: "scales with cores",
        },
        Row {
            figure: "Wasm decode speed / native".into(),
            measured: format!("{:.2}x", native.as_secs_f64() / wasm.as_secs_f64()),
            compared: format!("Wasm {:.0} MB/s, native {:.0} MB/s", mb_s(wasm), mb_s(native)),
            goal: ">= 0.8x",
        },
        Row {
            figure: "native decode".into(),
            measured: format!("{:.0} MB/s", mb_s(native)),
            compared: format!("{:.0} rec/s", rate(native)),
            goal: ">= 800 MB/s",
        },
    ]);
    Ok(())
}

fn best_of(rounds: usize, mut run: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .min()
        .expect("at least one round")
}

/// How long `seed_logic.py` takes over `stream`: its decoding loop alone.
fn seed_logic(stream: &std::path::Path) -> anyhow::Result<Duration> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/seed_logic.py");
    let out = std::process::Command::new("python3").arg(script).arg(stream).output()?;
    anyhow::ensure!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    let seconds = text
        .split_once(" records in ")
        .and_then(|(_, rest)| rest.trim().strip_suffix(" s"))
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("{script} printed {text:?}"))?;
    Ok(Duration::from_secs_f64(seconds))
}
