//! sluice's integration tests, in one binary. Each test works in a fresh
//! temporary folder, drives the real `sluice` binary or the library, and
//! reads the resulting SQLite database back.
//!
//! Test names state the guarantee they check.

mod cases;
mod convergence;
mod coordination;
mod crash;
mod export;
mod faults;
mod group_commit;
mod hostile;
mod iam;
mod join;
mod kinesis;
mod leases;
mod manifests;
mod operations;
mod permissions;
mod postgres;
mod property;
mod raw_payload;
mod redshift;
mod replay;
mod s3_sink;
mod scaffold;
mod seed;
mod seed_jobs;
mod status;
mod threads;
mod util;
