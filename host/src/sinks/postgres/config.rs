//! `[sink] type = "postgres"`: the manifest section and what it resolves to,
//! and the URL as a secret that is never shown with its password.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::{Context, ManifestError, NotReady};

/// PostgreSQL cuts identifiers at 63 bytes (NAMEDATALEN - 1), so two longer
/// target names could become one table.
pub const MAX_NAME_BYTES: usize = 63;

/// `[sink] type = "postgres"`: a PostgreSQL database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub url: Secret,
    pub schema: String,
    pub ca_file: Option<PathBuf>,
}

impl Section {
    pub fn resolve(self, cx: &Context) -> Result<Config, ManifestError> {
        let url = match (self.url, self.url_env) {
            (Some(url), None) => {
                let text = url.get_ref();
                if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                    return Err(cx.err(&url, "the url must start with postgres:// or postgresql://"));
                }
                Secret::Literal(url.into_inner())
            }
            (None, Some(var)) => Secret::Env(var.into_inner()),
            (Some(url), Some(_)) => return Err(cx.err(&url, "give url or url_env, not both")),
            (None, None) => return Err(cx.whole("[sink] type = \"postgres\" needs url or url_env")),
        };
        let schema = cx.schema(&self.schema)?;
        if let Some(at) = self.schema.as_ref().filter(|_| schema.len() > MAX_NAME_BYTES) {
            return Err(cx.err(at, format!("PostgreSQL names are at most {MAX_NAME_BYTES} bytes")));
        }
        Ok(Config { url, schema, ca_file: self.ca_file.map(|f| cx.path(&f)) })
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres {} (schema {})", self.url, self.schema)
    }
}

/// A value that may hold a password: given in the manifest or named by an
/// environment variable, and never shown with its password.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Literal(String),
    Env(String),
}

/// An environment variable a manifest names is not set.
#[derive(Debug, thiserror::Error)]
#[error("the environment variable {0} (named by url_env) is not set")]
pub struct Unset(String);

impl Config {
    /// What the machine must provide: the URL's variable, the CA file.
    pub fn ready(&self) -> Result<(), NotReady> {
        if let Err(unset) = self.url.reveal() {
            return Err(NotReady { field: "url_env", why: unset.to_string() });
        }
        match &self.ca_file {
            Some(ca) if !ca.is_file() => {
                Err(NotReady { field: "ca_file", why: format!("there is no file {}", ca.display()) })
            }
            _ => Ok(()),
        }
    }
}

impl Secret {
    /// The value itself, reading the environment variable if named.
    pub fn reveal(&self) -> Result<String, Unset> {
        match self {
            Secret::Literal(v) => Ok(v.clone()),
            Secret::Env(name) => std::env::var(name).map_err(|_| Unset(name.clone())),
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
