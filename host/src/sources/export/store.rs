//! Where an export's files are: a local folder or an S3 prefix. Files are
//! opened as blocking readers so that the reader threads decompress them
//! with plain `std::io`; S3 bodies are bridged from the SDK's async stream.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::runtime::Runtime;

use crate::manifest::{Location, S3Prefix};

pub enum Store {
    Local(PathBuf),
    S3 { client: aws_sdk_s3::Client, at: S3Prefix, runtime: Runtime },
}

impl Store {
    pub fn open(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Local(path) => Store::Local(path.clone()),
            Location::S3(at) => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("sluice-s3")
                    .enable_all()
                    .build()?;
                let client = runtime.block_on(async { crate::aws::s3(&crate::aws::config().await) });
                let mut at = at.clone();
                if !at.prefix.is_empty() && !at.prefix.ends_with('/') {
                    at.prefix.push('/');
                }
                Store::S3 { client, at, runtime }
            }
        })
    }

    /// The export's id: the name of its folder.
    pub fn export_id(&self) -> String {
        let path = match self {
            Store::Local(path) => path.to_string_lossy().into_owned(),
            Store::S3 { at, .. } => at.prefix.clone(),
        };
        path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// Where a file is, for messages: a path or an `s3://` URI.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Store::Local(path) => path.join(rel).display().to_string(),
            Store::S3 { at, .. } => format!("{at}{rel}"),
        }
    }

    /// A small file (a manifest), whole.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.reader(rel, None)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", self.describe(rel)))?;
        Ok(bytes)
    }

    /// A file as a stream of its stored bytes. For S3, a differing `etag`
    /// (the object was replaced since the export) is refused before reading.
    pub fn reader(&self, rel: &str, etag: Option<&str>) -> Result<Box<dyn Read + Send>> {
        match self {
            Store::Local(path) => {
                let file = std::fs::File::open(path.join(rel))
                    .with_context(|| format!("opening {}", self.describe(rel)))?;
                Ok(Box::new(file))
            }
            Store::S3 { client, at, runtime } => {
                let key = format!("{}{rel}", at.prefix);
                let got = runtime.block_on(client.get_object().bucket(&at.bucket).key(&key).send()).map_err(
                    |e| {
                        let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                        let why =
                            if missing { "no such object".to_owned() } else { crate::aws::describe(&e) };
                        anyhow!("reading {}: {why}", self.describe(rel))
                    },
                )?;
                if let (Some(want), Some(have)) = (etag, got.e_tag())
                    && want.trim_matches('"') != have.trim_matches('"')
                {
                    bail!(
                        "{} has ETag {have}, but the export's manifest says {want}: the object was replaced",
                        self.describe(rel)
                    );
                }
                let body = got.body.into_async_read();
                Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(body, runtime.handle().clone())))
            }
        }
    }
}
