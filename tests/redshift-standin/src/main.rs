//! `redshift-standin`: the Redshift Data API stand-in as a process, for
//! running sluice by hand against PostgreSQL (and moto for COPY).
//!
//! ```text
//! redshift-standin --postgres <url> [--listen 127.0.0.1:PORT] [--s3-endpoint URL]
//!     [--region us-east-1] [--super-max-string-bytes 65535] [--request-latency-ms 0]
//! ```
//!
//! Prints the endpoint on stdout and serves until killed.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use redshift_standin::{Config, StandIn};

const USAGE: &str = "usage: redshift-standin --postgres <url> [--listen 127.0.0.1:PORT] [--s3-endpoint URL] \
                     [--region us-east-1] [--super-max-string-bytes 65535] [--request-latency-ms 0]";

fn main() -> anyhow::Result<()> {
    let mut config = Config::default();
    let mut postgres_url = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--postgres" => postgres_url = Some(value()?),
            "--s3-endpoint" => config.s3_endpoint = Some(value()?),
            "--region" => config.region = value()?,
            "--super-max-string-bytes" => {
                let text = value()?;
                config.super_max_string_bytes =
                    text.parse().with_context(|| format!("--super-max-string-bytes {text}: not a number"))?;
            }
            "--request-latency-ms" => {
                let text = value()?;
                let ms =
                    text.parse().with_context(|| format!("--request-latency-ms {text}: not a number"))?;
                config.request_latency = std::time::Duration::from_millis(ms);
            }
            "--listen" => {
                let text = value()?;
                listen = text
                    .parse()
                    .with_context(|| format!("--listen {text}: not an address like 127.0.0.1:4000"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    config.postgres_url = postgres_url.with_context(|| format!("--postgres is required\n{USAGE}"))?;
    let standin = StandIn::start_on(config, listen)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", standin.endpoint()).context("printing the endpoint")?;
    stdout.flush().context("printing the endpoint")?;
    // The server runs on its own thread; this one only keeps the process alive.
    loop {
        std::thread::park();
    }
}
