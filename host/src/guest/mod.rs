//! The guest runtime: the only room that names wasmtime.
//!
//! Records go in, one [`Outcome`](crate::record::Outcome) per record comes out.
//!
//! * [`GuestRuntime`] is built once per process: the engine, the linker that
//!   offers the `host` imports and an empty WASI context, an epoch ticker for
//!   time budgets, and the on-disk compile cache (`cache.rs`).
//! * [`TableGuest`] is one instance serving one table, reused across batches,
//!   with its own memory cap and a time budget per call (`instance.rs`).
//! * [`GuestPool`] is a table's instances, up to `[guest] threads`: a large
//!   batch is cut into runs transformed in parallel, outcomes kept in order
//!   (`pool.rs`).
//! * `isolate.rs` narrows a failing batch down to the records that cause the
//!   failure, on fresh instances, so only those records are dead-lettered.
//! * `fetch.rs` serves the `fetch` import: objects under the table's
//!   `[tables.join]` prefix, fetched concurrently and cached.
//! * `cases.rs` runs a guest over input/expected files (`sluice guest test`).
//!
//! **Sandbox.** Components built for `wasm32-wasip2` with std import WASI
//! interfaces even when they never touch a file: std seeds `HashMap` from
//! `wasi:random`, reads clocks, and prints panics to stderr. Defining unknown
//! imports as traps would turn those harmless calls into poison records, so
//! we link WASI with an *empty* context instead: no preopened folders, no
//! environment variables or arguments, no sockets or name lookups, stdin
//! closed. Stderr is kept (last 4 KiB) only to explain a failure.

mod bindings;
mod builtin;
mod cache;
pub mod cases;
mod fetch;
mod instance;
mod isolate;
mod pool;
mod runtime;
pub mod scaffold;
mod stderr;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

pub use fetch::{Fetch, Fetcher};
pub use instance::TableGuest;
pub use pool::GuestPool;
pub use runtime::GuestRuntime;

/// Which component a table runs: `builtin:<name>` or a `.wasm` file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransformRef {
    Builtin(String),
    File(PathBuf),
}

impl TransformRef {
    /// What a table runs when the manifest does not say.
    pub const DEFAULT: &'static str = "builtin:ddb-json";

    /// Reads `builtin:<name>` or a path, relative paths taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, UnknownBuiltin> {
        match text.strip_prefix("builtin:") {
            Some(name) if builtin::lookup(name).is_some() => Ok(TransformRef::Builtin(name.to_owned())),
            Some(name) => Err(UnknownBuiltin(name.to_owned())),
            None => Ok(TransformRef::File(base.join(text))),
        }
    }

    /// Whether the transform reads objects and so needs `[tables.join]`
    /// (known for built-ins; a custom component may fetch or not).
    pub fn needs_join(&self) -> bool {
        match self {
            TransformRef::Builtin(name) => builtin::lookup(name).is_some_and(|b| b.needs_join),
            TransformRef::File(_) => false,
        }
    }

    fn wasm(&self) -> Result<Cow<'static, [u8]>> {
        match self {
            TransformRef::Builtin(name) => {
                Ok(Cow::Borrowed(builtin::lookup(name).expect("checked by parse").wasm))
            }
            TransformRef::File(path) => std::fs::read(path)
                .map(Cow::Owned)
                .with_context(|| format!("reading the transform {}", path.display())),
        }
    }
}

impl fmt::Display for TransformRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformRef::Builtin(name) => write!(f, "builtin:{name}"),
            TransformRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A `builtin:` name that names no built-in transform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "there is no built-in transform {0:?}; the built-ins are: {list}",
    list = builtin::names().map(|n| format!("builtin:{n}")).collect::<Vec<_>>().join(", ")
)]
pub struct UnknownBuiltin(String);

/// What an instance may use, and how many instances a table may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// The most time one `transform` call may take before the guest is stopped.
    pub time_budget: Duration,
    /// Time per record of a call: a call of n records may take n times this,
    /// up to `time_budget`. So a call of one record costs little if it loops.
    pub record_budget: Duration,
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Instances of one table's transform that share a batch, each on its
    /// own thread.
    pub threads: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            time_budget: Duration::from_secs(5),
            record_budget: Duration::from_millis(10),
            memory_bytes: 256 << 20,
            // One core is left to the sink's thread: on 2 cores, two
            // instances competing with it made a run to SQLite about 6% slower.
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        }
    }
}

impl GuestLimits {
    /// What a call of `records` records may take. Time the guest spends
    /// waiting for the host (`fetch`) does not count.
    pub fn call_budget(&self, records: usize) -> Duration {
        self.record_budget.saturating_mul(u32::try_from(records).unwrap_or(u32::MAX)).min(self.time_budget)
    }
}

/// What the manifest says about the table an instance serves; passed to the
/// guest's `configure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSettings {
    pub source_table: String,
    pub target_table: String,
    pub keys: Vec<String>,
    pub settings: Vec<(String, String)>,
}
