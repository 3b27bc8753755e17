//! `[sink] type = "s3"`: the manifest section and what it resolves to.

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError};
use crate::objects::Location;

/// `[sink] type = "s3"`: each committed batch as objects of JSON lines, per
/// sink table and date (the seed's S3 output mode).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `s3://bucket/prefix/` (the seed's S3OutputPath) or a local folder,
    /// relative to the manifest's folder.
    pub path: Spanned<String>,
    /// `changes` (default: every distinct change) or `latest` (the latest
    /// change per item in each batch).
    pub mode: Option<Spanned<String>>,
    /// Compress the objects (`.jsonl.gz`); default false.
    pub gzip: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
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

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        let mode = match self.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "changes")) => OutputMode::Changes,
            Some((_, "latest")) => OutputMode::Latest,
            Some((m, other)) => {
                return Err(cx.err(m, format!("mode is {other:?}; it must be changes or latest")));
            }
        };
        Ok(Config {
            location: cx.location(&self.path, "s3://bucket/prefix/")?,
            mode,
            gzip: self.gzip.unwrap_or(false),
        })
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            OutputMode::Changes => "every change",
            OutputMode::Latest => "latest per item",
        };
        write!(f, "json lines in {} ({mode}{})", self.location, if self.gzip { ", gzip" } else { "" })
    }
}
