//! `[coordination]`: the lease table that the workers of one pipeline share.
//!
//! ```toml
//! [coordination]
//! type = "dynamodb"
//! table = "orders-sluice-leases"
//! lease_duration = "10s"
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::leases::LeaseTable;
use crate::manifest::{Context, ManifestError};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `dynamodb`: a lease table in the Kinesis Client Library's schema.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// The lease table; created on first use, with on-demand billing.
    pub table: Spanned<String>,
    /// This worker's name in the table (default: host name and process id).
    pub worker_id: Option<Spanned<String>>,
    /// How long a lease lasts unrenewed before another worker may take it
    /// (default "10s"); a lease is renewed three times in that time.
    pub lease_duration: Option<Spanned<String>>,
    /// The most leases this worker takes (default: its fair share).
    pub max_leases_per_worker: Option<Spanned<i64>>,
}

/// `[coordination]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub worker_id: String,
    pub lease_duration: Duration,
    pub max_leases: Option<usize>,
}

impl Config {
    /// This worker's handle on the lease table. A call's attempt gives up
    /// after a third of a lease duration (1 to 5 s): by then the renewal
    /// it holds up is due again.
    pub fn lease_table(&self) -> LeaseTable {
        let attempt = (self.lease_duration / 3).clamp(Duration::from_secs(1), Duration::from_secs(5));
        LeaseTable::new(crate::aws::dynamodb(attempt), &self.table, &self.worker_id)
    }
}

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        if self.kind.get_ref() != "dynamodb" {
            return Err(cx.err(
                &self.kind,
                format!("unknown coordination type {:?}; the only one is \"dynamodb\"", self.kind.get_ref()),
            ));
        }
        // DynamoDB's table names: 3 to 255 of letters, digits, '_', '-' and '.'.
        let table = self.table.get_ref();
        if !(3..=255).contains(&table.len())
            || !table.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(
                cx.err(&self.table, "a DynamoDB table name is 3 to 255 letters, digits, '_', '-' or '.'")
            );
        }
        let worker_id = match &self.worker_id {
            Some(w) if w.get_ref().trim().is_empty() || w.get_ref().len() > 256 => {
                return Err(cx.err(w, "the worker id must be 1 to 256 characters, not only spaces"));
            }
            Some(w) => w.get_ref().clone(),
            None => default_worker_id(),
        };
        let lease_duration = match &self.lease_duration {
            Some(d) => {
                let parsed = humantime::parse_duration(d.get_ref())
                    .map_err(|e| cx.err(d, format!("{e}: give a duration such as \"10s\"")))?;
                if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&parsed) {
                    return Err(cx.err(d, "the lease duration must be between 1s and 1h"));
                }
                parsed
            }
            None => Duration::from_secs(10),
        };
        Ok(Config {
            table: table.clone(),
            worker_id,
            lease_duration,
            max_leases: cx.int(&self.max_leases_per_worker, 1, 100_000)?,
        })
    }
}

/// The host name and the process id: unique among the workers alive at once.
fn default_worker_id() -> String {
    let uname = rustix::system::uname();
    format!("{}:{}", uname.nodename().to_string_lossy(), std::process::id())
}
