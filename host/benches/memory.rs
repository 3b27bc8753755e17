//! Peak memory while the input grows tenfold, file to SQLite, with the item
//! set growing with the stream (every change a new item or nearly), so the
//! sink's table grows too. Side by side in one run: three sizes.
//!
//! Runs the release `sluice` and reads its peak resident set (`VmHWM`) from
//! /proc while it runs. Run with `cargo bench -p sluice --bench memory`;
//! `SLUICE_BENCH_SHORT=1` runs a tenth of the sizes.

#[allow(dead_code)]
mod common;

use sluice::generator::{self, GenOptions};

use common::Row;

fn main() -> anyhow::Result<()> {
    let base = if common::short() { 2_000 } else { 20_000 };
    println!("file -> Wasm -> SQLite, items growing with the stream; peak resident set of `sluice run`\n");
    println!("| changes | items | data | peak RSS | time |");
    println!("|---|---|---|---|---|");
    let mut peaks = Vec::new();
    for changes in [base, base * 3, base * 10] {
        let g = generator::generate(&GenOptions { changes, items: changes, ..Default::default() });
        let dir = tempfile::tempdir()?;
        let data = g.records.join("\n") + "\n";
        std::fs::write(dir.path().join("stream.jsonl"), &data)?;
        let manifest = dir.path().join("memory.toml");
        std::fs::write(
            &manifest,
            "name = \"memory\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"memory.db\"\n[defaults]\ntarget = \"cdc\"\n",
        )?;
        let (elapsed, peak_kb) = common::run_measured(&manifest)?;
        let mb = peak_kb as f64 / 1024.0;
        println!(
            "| {changes} | {} | {:.0} MB | {mb:.0} MB | {:.1} s |",
            g.expected.len(),
            data.len() as f64 / 1e6,
            elapsed.as_secs_f64()
        );
        peaks.push(mb);
    }
    common::summary(&[Row {
        figure: "peak RSS, input 10x, item set growing".into(),
        measured: peaks.iter().map(|mb| format!("{mb:.0}")).collect::<Vec<_>>().join(" / ") + " MB",
        compared: format!("{} / {} / {} changes", base, base * 3, base * 10),
        goal: "flat, < 200 MB",
    }]);
    Ok(())
}
