//! What operators see of a run: logs (`tracing` to stderr, as text for
//! people or one JSON object a line for machines) and, in `metrics.rs` and
//! `server.rs`, Prometheus metrics and a health check over HTTP.
//!
//! `SLUICE_LOG` takes an env-filter directive (e.g. `SLUICE_LOG=sluice=debug`);
//! otherwise `-v`/`-q` pick the level.

pub mod metrics;
mod server;

pub use server::serve;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, and the
    /// event's fields (the message as `fields.message`).
    Json,
}

pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,sluice={level}")));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => logs.json().try_init(),
        // Colours only for people: log files and pipes get plain text.
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
