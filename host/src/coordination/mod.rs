//! Several sluice processes sharing one stream: a lease per shard in a
//! DynamoDB table, in the Kinesis Client Library's schema (`leases.rs`),
//! which leases a worker takes or steals (`balance.rs`), and the task that
//! keeps a worker's leases (`worker.rs`). Why this keeps every change
//! effectively-once is in ARCHITECTURE.md.

pub mod balance;
mod config;
pub mod leases;
mod worker;

pub use config::{Config, Section};
pub use worker::{Ended, Held, Holding, Worker};

/// Every lease in the table, for `sluice status`: one Scan, nothing
/// created or written.
pub fn leases(config: &Config) -> anyhow::Result<Vec<leases::Lease>> {
    crate::aws::block_on(config.lease_table().all())
}
