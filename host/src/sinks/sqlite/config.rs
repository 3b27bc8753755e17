//! `[sink] type = "sqlite"`: the manifest section and what it resolves to.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError, NotReady};

/// `[sink] type = "sqlite"`: an embedded SQLite database file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The database file, relative to the manifest's folder; created if missing.
    pub path: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
}

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        Ok(Config { path: cx.path(&self.path) })
    }
}

impl Config {
    /// The database is a file, created if missing: not a folder.
    pub fn ready(&self) -> Result<(), NotReady> {
        if self.path.is_dir() {
            return Err(NotReady {
                field: "path",
                why: format!("{} is a folder; name the database file in it", self.path.display()),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sqlite {}", self.path.display())
    }
}
