//! Decoding throughput on a file of stream records, one JSON per line:
//! `cargo run --release -p sluice-ddb-core --example bench -- FILE [ROUNDS]`.
//! Prints the best round, in MB/s of input and records/s.

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: bench FILE [ROUNDS]");
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let text = std::fs::read(&path).expect("readable file");
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut ok = 0usize;
        for line in &lines {
            ok += usize::from(std::hint::black_box(ddb_core::decode_stream_record(line)).is_ok());
        }
        best = best.min(start.elapsed());
        assert!(ok > 0, "no record decoded");
    }
    let secs = best.as_secs_f64();
    println!(
        "{} records, {:.1} MB: best of {rounds} {:.1} ms, {:.0} MB/s, {:.0} records/s",
        lines.len(),
        bytes as f64 / 1e6,
        secs * 1e3,
        bytes as f64 / 1e6 / secs,
        lines.len() as f64 / secs
    );
}
