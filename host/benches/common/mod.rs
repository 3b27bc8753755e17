//! What the benchmarks share: the summary rows `./scripts/bench` collects.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One row of the summary: the figure, what this run measured, what it is
/// compared with in the same run, and the goal.
pub struct Row {
    pub figure: String,
    pub measured: String,
    pub compared: String,
    pub goal: &'static str,
}

/// Appends `rows` to the table `./scripts/bench` prints at the end, when it
/// asks for them (`SLUICE_BENCH_SUMMARY=<file>`).
pub fn summary(rows: &[Row]) {
    let Some(path) = std::env::var_os("SLUICE_BENCH_SUMMARY") else { return };
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the summary file");
    for r in rows {
        writeln!(file, "| {} | {} | {} | {} |", r.figure, r.measured, r.compared, r.goal)
            .expect("writing the summary");
    }
}

/// Whether `./scripts/bench --short` (CI) asked for a quick run that only
/// keeps the benchmark working.
pub fn short() -> bool {
    std::env::var_os("SLUICE_BENCH_SHORT").is_some()
}

/// Runs `sluice -q run <manifest>` (the release binary); returns its wall
/// time and its peak resident memory in KiB.
pub fn run_measured(manifest: &Path) -> anyhow::Result<(Duration, u64)> {
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"));
    sluice.arg("-q").arg("run").arg(manifest).stdout(Stdio::null());
    measured(sluice)
}

/// Runs a command to its successful end; returns its wall time and its peak
/// resident memory in KiB, read from /proc while it runs.
pub fn measured(mut command: Command) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // VmHWM only grows; its last reading before the exit is the peak.
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            peak = peak.max(kb.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "the run failed: {status}");
            return Ok((started.elapsed(), peak));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
