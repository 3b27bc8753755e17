//! The pipeline manifest: TOML in, a validated [`Plan`] out.
//!
//! This room reads the top level, the table routes and the limits, and
//! hands `[source]` and `[sink]` by their `type` to the component that owns
//! the section: each source and sink folder holds its own `config.rs`
//! (serde section, checks, resolved config), as Vector's components do.
//!
//! Reading a manifest touches nothing but the manifest itself: no network,
//! no database, no `.wasm` loading. Paths are taken relative to the
//! manifest's folder. Every error names the file, line and field
//! ([`ManifestError`]).
//!
//! ```toml
//! name = "demo"
//! [source]
//! type = "file"
//! path = "data/stream.jsonl"
//! [sink]
//! type = "sqlite"
//! path = "out/demo.db"
//! [[tables]]
//! source = "orders"
//! target = "orders_cdc"
//! ```

mod error;
mod raw;
mod validate;

use std::path::PathBuf;

pub use error::ManifestError;
pub use raw::Typed;
pub use validate::{Context, load, parse, setting_text};

use crate::guest::{GuestLimits, TransformRef};
use crate::objects::S3Prefix;
use crate::record::{BatchLimits, DeleteMode, RawPayload};
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;

/// A manifest, checked and resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// The manifest file.
    pub path: PathBuf,
    /// Its text, so that checks made after parsing point at their line.
    pub text: std::sync::Arc<str>,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub batch: BatchLimits,
    pub guest: GuestLimits,
    pub run: RunLimits,
    pub telemetry: Telemetry,
    /// `[coordination]`: the workers sharing the pipeline's stream.
    pub coordination: Option<crate::coordination::Config>,
    pub tables: Vec<Route>,
    /// The route for tables without their own entry.
    pub defaults: Option<Route>,
}

/// When a run stops by itself (`[run]`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunLimits {
    pub max_dead_letters: Option<u64>,
    pub max_dead_letter_ratio: Option<f64>,
}

/// `[telemetry]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub stall_after: std::time::Duration,
}

/// Where one DynamoDB table's records go and what transforms them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The DynamoDB table; empty for the defaults route.
    pub source: String,
    pub target: String,
    pub transform: TransformRef,
    pub keys: Vec<String>,
    pub deletes: DeleteMode,
    pub raw_payload: RawPayload,
    pub settings: Vec<(String, String)>,
    pub join: Option<JoinPlan>,
}

/// A place in the manifest that a check made after parsing (a guest that
/// does not start, a missing file) points at.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// A `[[tables]]` entry's `transform`, or its `source` if it names none.
    Transform { table: &'a str },
    /// `[defaults]`' `transform`, or its `target` if it names none.
    DefaultsTransform,
    /// A field of `[source]`.
    Source(&'a str),
    /// A field of `[sink]`.
    Sink(&'a str),
}

/// A component's setting that the manifest gets right but the machine does
/// not provide (a missing file, an unset environment variable).
#[derive(Debug, thiserror::Error)]
#[error("{why}")]
pub struct NotReady {
    /// The setting's field in its section.
    pub field: &'static str,
    pub why: String,
}

/// What a table's transform may fetch (`[tables.join]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    /// Only URIs under this prefix are read.
    pub prefix: S3Prefix,
    pub max_object_bytes: u64,
    pub timeout: std::time::Duration,
    pub cache_bytes: usize,
}

impl Plan {
    /// The route for a DynamoDB table: its own entry, else the defaults.
    pub fn route(&self, table: &str) -> Option<Route> {
        if let Some(route) = self.tables.iter().find(|r| r.source == table) {
            return Some(route.clone());
        }
        self.defaults.as_ref().map(|d| Route { source: table.to_owned(), ..d.clone() })
    }

    /// Every sink table the plan can write, each once.
    pub fn targets(&self) -> Vec<(String, DeleteMode)> {
        let mut targets: Vec<(String, DeleteMode)> = Vec::new();
        for route in self.tables.iter().chain(&self.defaults) {
            if !targets.iter().any(|(t, _)| *t == route.target) {
                targets.push((route.target.clone(), route.deletes));
            }
        }
        targets
    }
}
