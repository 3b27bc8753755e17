//! Real servers for sluice's tests, started on 127.0.0.1 on first use and
//! gone when the test process exits.
//!
//! * [`postgres::shared`]: a throwaway PostgreSQL cluster from the machine's
//!   packages (`initdb` and `postgres`, run as the `postgres` user when the
//!   tests run as root), with a fresh database per test.
//! * [`moto::shared`]: `moto_server` from PyPI, standing in for S3 and STS.
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

/// A name no other test in this run will pick: for databases, buckets, tables.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
