//! The pipeline manifest: TOML in, a validated [`Plan`] out.
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
pub use validate::{load, parse};

use crate::guest::{GuestLimits, TransformRef};
use crate::record::{BatchLimits, DeleteMode};

/// A manifest, checked and resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// The manifest file.
    pub path: PathBuf,
    pub source: SourcePlan,
    pub sink: SinkPlan,
    pub batch: BatchLimits,
    pub guest: GuestLimits,
    pub tables: Vec<Route>,
    /// The route for tables without their own entry.
    pub defaults: Option<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePlan {
    File {
        path: PathBuf,
        /// The path as the manifest wrote it: names the stream in checkpoints
        /// and dead letters, whatever folder sluice runs from.
        written: String,
    },
    Kinesis(KinesisPlan),
    Export(ExportPlan),
}

impl std::fmt::Display for SourcePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourcePlan::File { path, .. } => write!(f, "file {}", path.display()),
            SourcePlan::Export(e) => {
                write!(f, "export {}", e.location)?;
                if let Some(h) = &e.then {
                    write!(
                        f,
                        ", then kinesis {} from exportTime - {}",
                        h.kinesis.stream_arn,
                        humantime::format_duration(h.margin)
                    )?;
                }
                Ok(())
            }
            SourcePlan::Kinesis(k) => {
                write!(f, "kinesis {}", k.stream_arn)?;
                if let Some(role) = &k.role_arn {
                    write!(f, " as {role}")?;
                }
                if let Some(consumer) = &k.consumer {
                    write!(f, ", enhanced fan-out as {consumer}")?;
                }
                match &k.start {
                    KinesisStart::TrimHorizon => write!(f, ", new shards from the oldest record"),
                    KinesisStart::Latest => write!(f, ", new shards from the newest record"),
                    KinesisStart::AtTimestamp(t) => {
                        write!(f, ", new shards from {}", humantime::format_rfc3339(*t))
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPlan {
    pub location: Location,
    /// The DynamoDB table, when the manifest overrides the export's own.
    pub table: Option<String>,
    /// Data files read at once.
    pub parallel: usize,
    /// The stream to read once the export is loaded.
    pub then: Option<HandOver>,
}

/// A folder: local, or an S3 prefix (an export's folder, the S3 sink's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Prefix),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3(prefix) => write!(f, "{prefix}"),
        }
    }
}

/// From an export to the stream that continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    /// Its `start` is replaced by `exportTime - margin` once the export is read.
    pub kinesis: KinesisPlan,
    pub margin: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisPlan {
    pub stream_arn: String,
    pub role_arn: Option<String>,
    pub start: KinesisStart,
    /// Enhanced fan-out through this consumer, instead of polling.
    pub consumer: Option<String>,
}

/// Where shards without a checkpoint start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KinesisStart {
    TrimHorizon,
    Latest,
    AtTimestamp(std::time::SystemTime),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkPlan {
    Sqlite { path: PathBuf },
    Postgres(PostgresPlan),
    Redshift(RedshiftPlan),
    S3(S3SinkPlan),
}

/// `[sink] type = "s3"`: JSON lines in S3 or a local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3SinkPlan {
    pub location: Location,
    pub mode: OutputMode,
    pub gzip: bool,
}

/// What the S3 sink writes for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Every distinct change, duplicates (same event) removed.
    Changes,
    /// The latest change per item.
    Latest,
}

impl SinkPlan {
    /// Whether the sink wants every change of a batch, not only the latest per item.
    pub fn keeps_every_change(&self) -> bool {
        matches!(self, SinkPlan::S3(S3SinkPlan { mode: OutputMode::Changes, .. }))
    }
}

impl std::fmt::Display for SinkPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkPlan::Sqlite { path } => write!(f, "sqlite {}", path.display()),
            SinkPlan::Postgres(p) => write!(f, "postgres {} (schema {})", p.url, p.schema),
            SinkPlan::Redshift(r) => {
                let compute = match &r.compute {
                    RedshiftCompute::Workgroup(w) => format!("workgroup {w}"),
                    RedshiftCompute::Cluster(c) => format!("cluster {c}"),
                };
                write!(f, "redshift {compute}, database {}, schema {}", r.database, r.schema)?;
                match &r.staging {
                    Some(s) => write!(f, ", large batches staged in {s}"),
                    None => write!(f, ", no S3 staging"),
                }
            }
            SinkPlan::S3(o) => {
                let mode = match o.mode {
                    OutputMode::Changes => "every change",
                    OutputMode::Latest => "latest per item",
                };
                write!(f, "json lines in {} ({mode}{})", o.location, if o.gzip { ", gzip" } else { "" })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresPlan {
    pub url: Secret,
    pub schema: String,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedshiftPlan {
    pub database: String,
    pub compute: RedshiftCompute,
    pub auth: RedshiftAuth,
    pub schema: String,
    pub iam_role: Option<String>,
    pub staging: Option<S3Prefix>,
    pub staging_table: String,
    pub super_max_string_bytes: usize,
}

/// Where Redshift runs the statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedshiftCompute {
    Workgroup(String),
    Cluster(String),
}

/// How the Data API signs in to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedshiftAuth {
    /// The credentials in a Secrets Manager secret (workgroup or cluster).
    SecretArn(String),
    /// Temporary credentials for a database user (cluster only).
    DbUser(String),
    /// The caller's IAM identity becomes the database user (`IAM:<name>`),
    /// through redshift-serverless:GetCredentials or
    /// redshift:GetClusterCredentialsWithIAM.
    Iam,
}

/// `s3://bucket/prefix/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl std::fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A value that may hold a password: given in the manifest or named by an
/// environment variable, and never shown with its password.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Literal(String),
    Env(String),
}

impl Secret {
    /// The value itself, reading the environment variable if named.
    pub fn reveal(&self) -> Result<String, String> {
        match self {
            Secret::Literal(v) => Ok(v.clone()),
            Secret::Env(name) => std::env::var(name)
                .map_err(|_| format!("the environment variable {name} (named by url_env) is not set")),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// URLs are shown with any password replaced by `***`.
impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "${name}"),
            Secret::Literal(v) => f.write_str(&redact_url(v)),
        }
    }
}

/// `scheme://user:password@host/...` becomes `scheme://user:***@host/...`,
/// and a `password=` query parameter loses its value too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |j| i + j);
        out.replace_range(i + "password=".len()..end, "***");
    }
    out
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
    pub settings: Vec<(String, String)>,
    pub join: Option<JoinPlan>,
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
