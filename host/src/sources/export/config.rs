//! `[source] type = "export"`: the manifest section and what it resolves to.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError, NotReady, Typed};
use crate::objects::Location;
use crate::sources::kinesis;

/// How long before `exportTime` a hand-over starts reading the stream, unless
/// the manifest says: covers clock differences and changes in flight.
const DEFAULT_MARGIN: Duration = Duration::from_secs(300);

/// `[source] type = "export"`: a DynamoDB export to S3 (full or
/// incremental, DYNAMODB_JSON), optionally followed by a Kinesis stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
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
    pub then: Option<Spanned<Typed<kinesis::Section>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub location: Location,
    /// The DynamoDB table, when the manifest overrides the export's own.
    pub table: Option<String>,
    /// Data files read at once.
    pub parallel: usize,
    /// The stream to read once the export is loaded.
    pub then: Option<HandOver>,
}

/// From an export to the stream that continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    /// Its `start` is replaced by `exportTime - margin` once the export is read.
    pub kinesis: kinesis::Config,
    pub margin: Duration,
}

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        let location = cx.location(&self.path, "s3://bucket/prefix/AWSDynamoDB/<ExportId>/")?;
        if let Some(t) = &self.table
            && t.get_ref().is_empty()
        {
            return Err(cx.err(t, "the DynamoDB table name is empty"));
        }
        let then = match self.then {
            None => None,
            Some(then) => {
                if then.get_ref().kind.get_ref() != "kinesis" {
                    return Err(cx.err(&then, "then must be { type = \"kinesis\", ... }"));
                }
                let k = then.into_inner().section;
                if let Some(v) = k.start.as_ref().or(k.timestamp.as_ref()) {
                    return Err(cx.err(
                        v,
                        "the stream starts at the export's exportTime minus `margin`; remove start and timestamp",
                    ));
                }
                let margin = match &k.margin {
                    None => DEFAULT_MARGIN,
                    Some(m) => humantime::parse_duration(m.get_ref())
                        .map_err(|e| cx.err(m, format!("not a duration ({e}), e.g. \"5m\" or \"1h\"")))?,
                };
                Some(HandOver { kinesis: k.resolve_stream(cx)?, margin })
            }
        };
        Ok(Config {
            location,
            table: self.table.map(Spanned::into_inner),
            parallel: cx.int(&self.parallel, 1, 64)?.unwrap_or(4),
            then,
        })
    }
}

impl Config {
    /// A local export is a folder (one in S3 is checked when read).
    pub fn ready(&self) -> Result<(), NotReady> {
        match &self.location {
            Location::Local(dir) if !dir.is_dir() => {
                Err(NotReady { field: "path", why: format!("there is no folder {}", dir.display()) })
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "export {}", self.location)?;
        if let Some(h) = &self.then {
            write!(
                f,
                ", then kinesis {} from exportTime - {}",
                h.kinesis.stream_arn,
                humantime::format_duration(h.margin)
            )?;
        }
        Ok(())
    }
}
