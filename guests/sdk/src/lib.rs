//! Write sluice transforms in Rust.
//!
//! A transform is a WebAssembly component that turns the records a source
//! delivers (DynamoDB stream changes, export lines) into rows for the sink.
//! This crate gives you the bindings of the `sluice:transform` WIT world and
//! the decoder that `builtin:ddb-json` runs, so a transform is a few lines:
//! decode with [`decode`], change the row, return it.
//!
//! ```no_run
//! use sluice_guest::{Guest, Outcome, SourceRecord, TableConfig};
//!
//! struct Orders;
//!
//! impl Guest for Orders {
//!     fn configure(config: TableConfig) -> Result<(), String> {
//!         sluice_guest::remember(config)
//!     }
//!
//!     fn transform(records: Vec<SourceRecord>) -> Vec<Outcome> {
//!         records
//!             .into_iter()
//!             .map(|record| match sluice_guest::decode(record) {
//!                 Ok(row) => Outcome::Row(row),
//!                 Err(why) => Outcome::Error(why),
//!             })
//!             .collect()
//!     }
//! }
//!
//! sluice_guest::export!(Orders);
//! ```
//!
//! Build it as a `cdylib` with `cargo build --release --target wasm32-wasip2`
//! and name the `.wasm` in a table's `transform`. `sluice guest new NAME`
//! writes such a project, with test cases and a build script.
//!
//! The crate's version follows the WIT package's: `sluice-guest` 0.2.x builds
//! components for `sluice:transform@0.2.0` ([`WIT_VERSION`]).

wit_bindgen::generate!({
    path: "wit",
    world: "transformer",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "sluice_guest",
});

mod rows;

pub use ddb_core;
pub use exports::sluice::transform::transform::Guest;
pub use rows::{decode, remember, table};
pub use sluice::transform::host::{fetch, log};
pub use sluice::transform::types::{
    Column, ExportInfo, FetchError, LogLevel, Operation, Order, Outcome, RecordFormat, Row, Setting,
    SourceRecord, TableConfig, Value,
};

/// The version of the `sluice:transform` WIT package this crate binds.
pub const WIT_VERSION: &str = "0.2.0";

#[cfg(test)]
mod tests {
    #[test]
    fn the_crate_version_follows_the_wit_package() {
        let wit = include_str!("../wit/transform.wit");
        assert!(wit.contains(&format!("package sluice:transform@{};", super::WIT_VERSION)));
        let (major_minor, _) = super::WIT_VERSION.rsplit_once('.').unwrap();
        assert!(env!("CARGO_PKG_VERSION").starts_with(&format!("{major_minor}.")));
    }
}
