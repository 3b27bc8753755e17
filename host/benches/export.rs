//! Loading DynamoDB exports of growing size into SQLite with the release
//! `sluice` binary, side by side in one run: items/s, MB/s and the process's
//! peak memory (VmHWM) per size, next to how fast the same files are merely
//! decompressed and split into lines. Memory should stay flat as the export
//! grows, and the load should run far below the reading rate (the sink is
//! the limit).
//!
//! Run with `cargo bench -p sluice --bench export`. `SLUICE_BENCH_ITEMS`
//! sets the largest size (default 400000 items; the others are 1/16 and 1/4).

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::generator::{self, GenOptions};

const FILES: usize = 8;

fn main() -> anyhow::Result<()> {
    let default = if common::short() { 16_000 } else { 400_000 };
    let largest: usize =
        std::env::var("SLUICE_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let dir = tempfile::tempdir()?;
    println!(
        "| items | data (gzip) | load: items/s | load: MB/s | peak memory | gunzip + lines only: MB/s |"
    );
    println!("|---|---|---|---|---|---|");
    for items in [largest / 16, largest / 4, largest] {
        let folder = dir.path().join(format!("e{items}"));
        let (stored, plain) = write_export(&folder, items)?;
        let read_rate = plain as f64 / 1e6 / time(|| read_only(&folder)).as_secs_f64();
        let manifest = folder.join("load.toml");
        std::fs::write(
            &manifest,
            "name = \"bench\"\n[source]\ntype = \"export\"\npath = \"AWSDynamoDB/bench\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[[tables]]\nsource = \"orders\"\n\
             target = \"orders\"\nkeys = [\"id\"]\n",
        )?;
        let (elapsed, peak_kb) = common::run_measured(&manifest)?;
        let secs = elapsed.as_secs_f64();
        println!(
            "| {items} | {:.1} MB | {:.0} | {:.1} | {:.0} MB | {read_rate:.0} |",
            stored as f64 / 1e6,
            items as f64 / secs,
            plain as f64 / 1e6 / secs,
            peak_kb as f64 / 1024.0,
        );
        std::fs::remove_dir_all(&folder)?;
    }
    Ok(())
}

/// A full export of `items` distinct items in `FILES` gzip files; returns
/// the stored and the uncompressed sizes.
fn write_export(folder: &Path, items: usize) -> anyhow::Result<(u64, u64)> {
    // Enough changes that nearly every item exists at the end.
    let g = generator::generate(&GenOptions {
        tables: vec!["orders".into()],
        items,
        changes: items * 4,
        deletes: 0.0,
        ttl_deletes: 0.0,
        duplicates: 0.0,
        ..Default::default()
    });
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for record in &g.records {
        let v: Value = serde_json::from_str(record)?;
        latest.insert(v["dynamodb"]["Keys"].to_string(), v["dynamodb"]["NewImage"].clone());
    }
    let lines: Vec<String> =
        latest.into_values().take(items).map(|item| json!({ "Item": item }).to_string()).collect();
    let export = folder.join("AWSDynamoDB/bench");
    std::fs::create_dir_all(export.join("data"))?;
    let (mut stored, mut plain, mut manifest) = (0u64, 0u64, String::new());
    for (i, chunk) in lines.chunks(lines.len().div_ceil(FILES)).enumerate() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for line in chunk {
            gz.write_all(line.as_bytes())?;
            gz.write_all(b"\n")?;
            plain += line.len() as u64 + 1;
        }
        let bytes = gz.finish()?;
        stored += bytes.len() as u64;
        let name = format!("data/{i:03}.json.gz");
        std::fs::write(export.join(&name), &bytes)?;
        manifest.push_str(&json!({ "itemCount": chunk.len(), "dataFileS3Key": name }).to_string());
        manifest.push('\n');
    }
    std::fs::write(export.join("manifest-files.json"), manifest)?;
    let summary = json!({ "tableArn": "arn:aws:dynamodb:us-east-1:1:table/orders", "exportTime": "2026-01-01T00:00:00Z",
        "itemCount": lines.len(), "outputFormat": "DYNAMODB_JSON", "exportType": "FULL_EXPORT" });
    std::fs::write(export.join("manifest-summary.json"), summary.to_string())?;
    Ok((stored, plain))
}

fn read_only(folder: &Path) {
    let data = folder.join("AWSDynamoDB/bench/data");
    let mut lines = 0usize;
    for entry in std::fs::read_dir(data).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        let reader =
            std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)));
        lines += reader.split(b'\n').count();
    }
    assert!(lines > 0);
}

fn time(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}
