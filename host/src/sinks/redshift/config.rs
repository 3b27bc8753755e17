//! `[sink] type = "redshift"`: the manifest section and what it resolves to.

use serde::Deserialize;
use toml::Spanned;

use crate::ident;
use crate::manifest::{Context, ManifestError};
use crate::objects::S3Prefix;

/// The longest file source path: its partition name, with a line number,
/// goes in a VARCHAR(1024).
pub const MAX_PARTITION_BYTES: usize = 1000;

/// The default `max_coalesce`. A commit through the Data API takes about a
/// second whatever its size, so a transaction's records bound the rate.
/// With commits of a second, 25,000 puts a backlog of 20,000 records in one
/// transaction and catches up on a larger one at 13,000 records/s, in under
/// 200 MB (`cargo bench -p sluice --bench slow_sink`: 189 MB).
pub const DEFAULT_MAX_COALESCE: usize = 25_000;

/// `[sink] type = "redshift"`: Amazon Redshift through the Redshift Data API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub database: String,
    pub compute: Compute,
    pub auth: Auth,
    pub schema: String,
    pub iam_role: Option<String>,
    pub staging: Option<S3Prefix>,
    pub staging_table: String,
    pub super_max_string_bytes: usize,
}

/// Where Redshift runs the statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute {
    Workgroup(String),
    Cluster(String),
}

/// How the Data API signs in to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The credentials in a Secrets Manager secret (workgroup or cluster).
    SecretArn(String),
    /// Temporary credentials for a database user (cluster only).
    DbUser(String),
    /// The caller's IAM identity becomes the database user (`IAM:<name>`),
    /// through redshift-serverless:GetCredentials or
    /// redshift:GetClusterCredentialsWithIAM.
    Iam,
}

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        let whole = |m: &str| cx.whole(format!("[sink] type = \"redshift\" {m}"));
        let compute = match (self.workgroup, self.cluster) {
            (Some(w), None) => Compute::Workgroup(w.into_inner()),
            (None, Some(c)) => Compute::Cluster(c.into_inner()),
            (Some(w), Some(_)) => {
                return Err(cx.err(&w, "give workgroup (Serverless) or cluster, not both"));
            }
            (None, None) => return Err(whole("needs workgroup (Serverless) or cluster (provisioned)")),
        };
        let auth = match (self.secret_arn, self.db_user) {
            (Some(a), None) => Auth::SecretArn(a.into_inner()),
            (None, Some(u)) if matches!(compute, Compute::Cluster(_)) => Auth::DbUser(u.into_inner()),
            (None, Some(u)) => {
                return Err(cx.err(
                    &u,
                    "db_user works with a provisioned cluster; a Serverless workgroup signs in with \
                     secret_arn or as the caller's IAM identity (neither given)",
                ));
            }
            (Some(a), Some(_)) => return Err(cx.err(&a, "give secret_arn or db_user, not both")),
            (None, None) => Auth::Iam,
        };
        let staging = match &self.staging {
            Some(uri) => Some(cx.s3_prefix(uri)?),
            None => None,
        };
        if let (Some(uri), None) = (&self.staging, &self.iam_role) {
            return Err(cx.err(uri, "staging needs iam_role: Redshift's COPY reads the staged files with it"));
        }
        let staging_table = match &self.staging_table {
            Some(t) => ident::fold(t.get_ref()).map_err(|why| cx.err(t, why))?,
            None => "sluice_stage".to_owned(),
        };
        Ok(Config {
            database: self.database.into_inner(),
            compute,
            auth,
            schema: cx.schema(&self.schema)?,
            iam_role: self.iam_role.map(Spanned::into_inner),
            staging,
            staging_table,
            super_max_string_bytes: cx.int(&self.super_max_string_bytes, 1, 16 << 20)?.unwrap_or(65535),
        })
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let compute = match &self.compute {
            Compute::Workgroup(w) => format!("workgroup {w}"),
            Compute::Cluster(c) => format!("cluster {c}"),
        };
        write!(f, "redshift {compute}, database {}, schema {}", self.database, self.schema)?;
        match &self.staging {
            Some(s) => write!(f, ", large batches staged in {s}"),
            None => write!(f, ", no S3 staging"),
        }
    }
}
