//! The manifest as written: serde types, one per section. Every section
//! rejects unknown fields, and the comments here are the field reference.
//!
//! `[source]` and `[sink]` are tagged by `type`. They are read in two steps
//! (the tag first, then the section as its own struct) so that an unknown
//! field is reported at its own line, not at the section header.

use serde::Deserialize;
use toml::Spanned;

/// The top level of a manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Names the pipeline; its checkpoints in the sink are kept under this name.
    pub name: Spanned<String>,
    /// Where records come from. Read separately, see [`SourceSection`].
    pub source: Tagged,
    /// Where rows go. Read separately, see [`SinkSection`].
    pub sink: Tagged,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub guest: Guest,
    /// Where records of tables without a `[[tables]]` entry go.
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub tables: Vec<Table>,
}

/// Only the `type` of a tagged section; the rest is read by type.
#[derive(Debug, Deserialize)]
pub struct Tagged {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
}

/// The document again, seen only through `[source]`.
#[derive(Debug, Deserialize)]
pub struct SourceSection<T> {
    pub source: T,
}

/// The document again, seen only through `[sink]`.
#[derive(Debug, Deserialize)]
pub struct SinkSection<T> {
    pub sink: T,
}

/// `[source] type = "file"`: one stream record (a Kinesis record's data) per
/// line; blank lines are skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    #[serde(rename = "type")]
    pub _kind: String,
    /// The file, relative to the manifest's folder.
    pub path: Spanned<String>,
}

/// `[source] type = "kinesis"`: a Kinesis data stream fed by "Kinesis Data
/// Streams for DynamoDB".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSource {
    #[serde(rename = "type")]
    pub _kind: String,
    /// The stream's ARN (the seed's StreamARN); every call goes by ARN.
    pub stream_arn: Spanned<String>,
    /// A role to assume through STS for reading, e.g. in another account
    /// (the seed's KinesisRoleARN).
    pub role_arn: Option<Spanned<String>>,
    /// Where shards without a checkpoint start: `trim_horizon` (default,
    /// everything retained), `latest` (only new records) or `at_timestamp`.
    pub start: Option<Spanned<String>>,
    /// For `start = "at_timestamp"`: an RFC 3339 time, e.g. `2026-01-01T00:00:00Z`.
    pub timestamp: Option<Spanned<String>>,
    /// Read with enhanced fan-out as this consumer (registered if missing):
    /// 2 MB/s per shard of its own and records pushed as they arrive,
    /// instead of polling.
    pub consumer: Option<Spanned<String>>,
    /// Only under an export's `then`: how long before the export's
    /// `exportTime` the stream is read from (default `5m`), e.g. `"15m"`.
    pub margin: Option<Spanned<String>>,
}

/// `[source] type = "export"`: a DynamoDB export to S3 (full or
/// incremental, DYNAMODB_JSON), optionally followed by a Kinesis stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSource {
    #[serde(rename = "type")]
    pub _kind: String,
    /// The export's folder (the seed's S3DynamoDbExportPath):
    /// `s3://bucket/prefix/AWSDynamoDB/<ExportId>/`, or a local folder of
    /// the same layout (relative to the manifest's folder).
    pub path: Spanned<String>,
    /// The DynamoDB table the items belong to; default: the table named by
    /// `tableArn` in `manifest-summary.json`.
    pub table: Option<Spanned<String>>,
    /// Data files read at once (default 4).
    pub parallel: Option<Spanned<i64>>,
    /// What to read once the export is loaded: `{ type = "kinesis", ... }`,
    /// the fields of a Kinesis source without `start`. Shards without a
    /// checkpoint are read from `exportTime` minus `margin`.
    pub then: Option<Spanned<KinesisSource>>,
}

/// `[sink] type = "sqlite"`: an embedded SQLite database file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSink {
    #[serde(rename = "type")]
    pub _kind: String,
    /// The database file, relative to the manifest's folder; created if missing.
    pub path: Spanned<String>,
}

/// `[sink] type = "s3"`: each committed batch as objects of JSON lines, per
/// sink table and date (the seed's S3 output mode).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Sink {
    #[serde(rename = "type")]
    pub _kind: String,
    /// `s3://bucket/prefix/` (the seed's S3OutputPath) or a local folder,
    /// relative to the manifest's folder.
    pub path: Spanned<String>,
    /// `changes` (default: every distinct change) or `latest` (the latest
    /// change per item in each batch).
    pub mode: Option<Spanned<String>>,
    /// Compress the objects (`.jsonl.gz`); default false.
    pub gzip: Option<bool>,
}

/// `[sink] type = "postgres"`: a PostgreSQL database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSink {
    #[serde(rename = "type")]
    pub _kind: String,
    /// A `postgres://` URL; `sslmode=require` makes TLS mandatory.
    pub url: Option<Spanned<String>>,
    /// The name of an environment variable holding the URL, to keep
    /// passwords out of manifests. Give `url` or `url_env`.
    pub url_env: Option<Spanned<String>>,
    /// The schema for the tables (default `public`); created if missing.
    pub schema: Option<Spanned<String>>,
    /// Extra CA certificates (PEM) to trust, e.g. Amazon RDS's bundle.
    pub ca_file: Option<Spanned<String>>,
}

/// `[sink] type = "redshift"`: Amazon Redshift through the Redshift Data API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftSink {
    #[serde(rename = "type")]
    pub _kind: String,
    /// The database name.
    pub database: Spanned<String>,
    /// A Redshift Serverless workgroup; give `workgroup` or `cluster`.
    pub workgroup: Option<Spanned<String>>,
    /// A provisioned cluster identifier.
    pub cluster: Option<Spanned<String>>,
    /// A Secrets Manager secret with the database credentials (workgroup or
    /// cluster). Without `secret_arn` and `db_user`, the caller's IAM identity
    /// signs in as the database user `IAM:<name>`.
    pub secret_arn: Option<Spanned<String>>,
    /// A database user, for temporary credentials (provisioned clusters only).
    pub db_user: Option<Spanned<String>>,
    /// The schema for the tables (default `public`); created if missing.
    pub schema: Option<Spanned<String>>,
    /// The role Redshift assumes to read staged batches from S3 (`COPY ... IAM_ROLE`);
    /// `default` uses the cluster's default role.
    pub iam_role: Option<Spanned<String>>,
    /// An `s3://bucket/prefix/` where batches too large for INSERT statements
    /// are staged as gzip JSON lines and loaded with COPY. Needs `iam_role`.
    pub staging: Option<Spanned<String>>,
    /// The staging table's name (the seed's RedshiftStagingTableName); a
    /// temporary table, one per target (default `sluice_stage`).
    pub staging_table: Option<Spanned<String>>,
    /// The longest string a SUPER value may hold, in bytes: Redshift's
    /// default, 65535, unless your cluster's limit was raised.
    pub super_max_string_bytes: Option<Spanned<i64>>,
}

/// `[batch]`: a batch is cut at whichever limit comes first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Records per batch (default 500).
    pub max_records: Option<Spanned<i64>>,
    /// Payload bytes per batch (default 4 MiB).
    pub max_bytes: Option<Spanned<i64>>,
    /// How long to wait for a batch to fill before sending it (default 1000).
    pub max_wait_ms: Option<Spanned<i64>>,
}

/// `[guest]`: limits for every transform instance.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// The most time one call of a transform may take, in milliseconds
    /// (default 5000).
    pub time_budget_ms: Option<Spanned<i64>>,
    /// Time per record of a call, in milliseconds (default 10): a call of n
    /// records may take n times this, up to `time_budget_ms`. Time spent
    /// waiting for the host's `fetch` does not count.
    pub record_budget_ms: Option<Spanned<i64>>,
    /// Linear memory one instance may use (default 256).
    pub memory_limit_mb: Option<Spanned<i64>>,
}

/// `[defaults]`: the route for tables that have no `[[tables]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub target: Spanned<String>,
    pub transform: Option<Spanned<String>>,
    pub deletes: Option<Spanned<String>>,
}

/// `[[tables]]`: one DynamoDB table and where its rows go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The DynamoDB table name (`tableName` in records).
    pub source: Spanned<String>,
    /// The sink table; created if missing.
    pub target: Spanned<String>,
    /// `builtin:<name>` or a path to a `.wasm` component (default `builtin:ddb-json`).
    pub transform: Option<Spanned<String>>,
    /// The key attribute names (needed for exports).
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// `soft` (default: keep the row, `is_deleted = true`) or `hard`.
    pub deletes: Option<Spanned<String>>,
    /// Passed to the transform's `configure` as name/value pairs.
    #[serde(default)]
    pub settings: toml::Table,
    /// What the transform may fetch, for the S3 join (`builtin:s3-join`).
    pub join: Option<Join>,
}

/// `[tables.join]`: the only objects the table's transform may read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The item attribute holding the object's URI (default `s3_uri`);
    /// passed to the transform as the setting `attribute`.
    pub attribute: Option<Spanned<String>>,
    /// `s3://bucket/prefix/` (the seed's S3JoinPath): objects outside it
    /// are refused.
    pub prefix: Spanned<String>,
    /// Larger objects are refused (default 1048576).
    pub max_object_bytes: Option<Spanned<i64>>,
    /// Per object (default 10000).
    pub timeout_ms: Option<Spanned<i64>>,
    /// Fetched objects kept for reuse, in MiB (default 64).
    pub cache_mb: Option<Spanned<i64>>,
}
