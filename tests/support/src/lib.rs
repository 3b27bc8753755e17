//! Real servers for sluice's tests, started on 127.0.0.1 on first use and
//! gone when the test process exits.
//!
//! * [`postgres::shared`]: a throwaway PostgreSQL cluster from the machine's
//!   packages (`initdb` and `postgres`, run as the `postgres` user when the
//!   tests run as root), with a fresh database per test.
//! * [`moto::shared`]: `moto_server` from PyPI, standing in for S3 and STS;
//!   [`moto::dynamodb`]: moto as DynamoDB, changed by one request at a time.
//! * [`s3_gate::shared`]: moto's S3 behind a gate that enforces IAM identity
//!   policies as S3 does, for tests of least-privilege access.
//! * [`kinesis::shared`]: kinesis-local (kinesis-mock) from npm, standing in
//!   for Kinesis Data Streams.
//!
//! A server that cannot start makes the test fail with the reason and the
//! command to fix it; nothing is skipped.

pub mod kinesis;
pub mod moto;
pub mod postgres;
mod process;
pub mod s3_gate;

pub use process::{free_port, spawn};

/// `GET path` on 127.0.0.1:`port`: (status, body), or `None` if nothing listens.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// A name no other test in this run will pick: for databases, buckets, tables.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
