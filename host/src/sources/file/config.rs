//! `[source] type = "file"`: the manifest section and what it resolves to.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError, NotReady};

/// `[source] type = "file"`: one stream record (a Kinesis record's data) per
/// line; blank lines are skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The file, relative to the manifest's folder.
    pub path: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    /// The path as the manifest wrote it: names the partition in checkpoints
    /// and dead letters, whatever folder sluice runs from.
    pub written: String,
}

impl Section {
    /// The path as written names the file's partition, which the sink keeps
    /// in at most `max` bytes.
    pub fn resolve(self, cx: &Context, max: usize) -> Result<Config, ManifestError> {
        if self.path.get_ref().len() > max {
            return Err(cx.err(
                &self.path,
                format!(
                    "the path is {} bytes; the sink keeps paths of at most {max}",
                    self.path.get_ref().len()
                ),
            ));
        }
        Ok(Config { path: cx.path(&self.path), written: self.path.into_inner() })
    }
}

impl Config {
    pub fn ready(&self) -> Result<(), NotReady> {
        if self.path.is_file() {
            return Ok(());
        }
        let why = match self.path.is_dir() {
            true => format!("{} is a folder, not a file of stream records", self.path.display()),
            false => format!("there is no file {}", self.path.display()),
        };
        Err(NotReady { field: "path", why })
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file {}", self.path.display())
    }
}
