//! sluice moves DynamoDB change data into a warehouse, with WebAssembly
//! transforms. A tour of the rooms, in the order a record passes them:
//!
//! * [`manifest`]: the pipeline's TOML, checked into a [`manifest::Plan`];
//! * [`sources`]: read records and cut batches with positions;
//! * [`guest`]: run the sandboxed transform components (the only room that
//!   knows wasmtime);
//! * [`sinks`]: store rows, dead letters and checkpoints atomically;
//! * [`pipeline`]: wires the others together;
//! * [`record`]: the types they share; [`columns`]: the standard columns
//!   of every sink table; [`ident`]: SQL names; [`aws`] and
//!   [`objects`]: AWS clients, and S3 or a local folder behind one interface.
//!
//! [`iam`] lists the AWS permissions a manifest needs.
//! [`generator`] writes realistic change streams for demos, tests and benchmarks.

pub mod aws;
pub mod cli;
pub mod columns;
pub mod coordination;
pub mod generator;
pub mod guest;
pub mod iam;
pub mod ident;
pub mod manifest;
pub mod objects;
pub mod pipeline;
pub mod record;
pub mod sinks;
pub mod sources;
pub mod telemetry;
