//! Objects under an S3 prefix, or files under a local folder, behind one
//! blocking interface: the export source reads through it (on plain reader
//! threads that decompress with `std::io`) and the S3 sink writes through
//! it. S3 bodies stream through a bridge from the SDK's async reader.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::runtime::{Handle, Runtime};

use crate::manifest::{Location, S3Prefix};

/// An S3 permission a room needs on its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `s3:ListBucket`: also what makes S3 answer 404, not 403, for a
    /// missing object, so every room that reads objects that may not exist
    /// needs it.
    List,
    Get,
    Put,
    Delete,
}

impl Access {
    fn action(self) -> &'static str {
        match self {
            Access::List => "s3:ListBucket",
            Access::Get => "s3:GetObject",
            Access::Put => "s3:PutObject",
            Access::Delete => "s3:DeleteObject",
        }
    }
}

/// Checks at start that the caller may do what a room will do under `at`,
/// so a missing permission stops the run with the action and resource it
/// lacks instead of failing later. `probe` (under `at`) names an object the
/// check may write, read back and delete. `s3:GetObject` is checked only
/// with `Put` (an object to read must exist: S3 does not say whether a
/// caller could read an object that is not there).
pub async fn check_access(
    client: &aws_sdk_s3::Client,
    at: &S3Prefix,
    needs: &[Access],
    probe: &str,
) -> Result<()> {
    let key = format!("{}{probe}", at.prefix);
    let mut order = needs.to_vec();
    order.sort_by_key(|a| {
        [Access::List, Access::Put, Access::Get, Access::Delete].iter().position(|o| o == a)
    });
    for access in order {
        let refused = match access {
            Access::List => {
                let list = client.list_objects_v2().bucket(&at.bucket).prefix(&at.prefix).max_keys(1);
                list.send().await.err().map(|e| denied(&e))
            }
            Access::Put => {
                let put = client.put_object().bucket(&at.bucket).key(&key).body(Vec::new().into());
                put.send().await.err().map(|e| denied(&e))
            }
            Access::Get if needs.contains(&Access::Put) => {
                client.get_object().bucket(&at.bucket).key(&key).send().await.err().map(|e| denied(&e))
            }
            Access::Get => None,
            Access::Delete => {
                client.delete_object().bucket(&at.bucket).key(&key).send().await.err().map(|e| denied(&e))
            }
        };
        match refused {
            None => {}
            Some((true, detail)) => {
                let resource = match access {
                    Access::List => format!("arn:aws:s3:::{} (for keys under {:?})", at.bucket, at.prefix),
                    _ => format!("arn:aws:s3:::{}/{}*", at.bucket, at.prefix),
                };
                bail!("sluice needs {} on {resource} (S3 said: {detail})", access.action());
            }
            Some((false, detail)) => bail!("checking {} on {at}: {detail}", access.action()),
        }
    }
    Ok(())
}

/// Whether an S3 error is a refusal (403), and its text.
fn denied<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> (bool, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let refused = e.raw_response().is_some_and(|r| r.status().as_u16() == 403)
        || aws_sdk_s3::error::ProvideErrorMetadata::code(e) == Some("AccessDenied");
    (refused, crate::aws::describe(e))
}

/// Why an object could not be read.
pub enum GetError {
    Missing,
    /// S3 refused it, and it exists (or S3 would not say).
    Denied(String),
    Failed(String),
}

/// Reads an object, telling a missing one from a forbidden one: S3 answers
/// 403 for a missing object unless the caller may list the bucket (and may
/// not say 404 even then when the listing is limited to a prefix), so a
/// refusal is followed by a listing of the key itself, which
/// `s3:ListBucket` on the prefix allows.
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, GetError> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => Ok(got),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Err(GetError::Missing),
        Err(e) if denied(&e).0 => {
            let listed = client.list_objects_v2().bucket(bucket).prefix(key).max_keys(1).send().await;
            match listed {
                Ok(page) if !page.contents().iter().any(|o| o.key() == Some(key)) => Err(GetError::Missing),
                _ => Err(GetError::Denied(crate::aws::describe(&e))),
            }
        }
        Err(e) => Err(GetError::Failed(crate::aws::describe(&e))),
    }
}

pub enum ObjectStore {
    Local(PathBuf),
    S3 { client: aws_sdk_s3::Client, at: S3Prefix, runtime: Runtime },
}

impl ObjectStore {
    pub fn open(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Local(path) => ObjectStore::Local(path.clone()),
            Location::S3(at) => {
                let runtime = crate::aws::runtime("sluice-s3", 2)?;
                let client = crate::aws::s3_client(&runtime);
                ObjectStore::S3 { client, at: at.clone(), runtime }
            }
        })
    }

    /// Checks the S3 permissions `needs` under the folder (see
    /// [`check_access`]); a local folder needs none.
    pub fn check(&self, needs: &[Access], probe: &str) -> Result<()> {
        match self {
            ObjectStore::Local(_) => Ok(()),
            ObjectStore::S3 { client, at, runtime } => {
                runtime.block_on(check_access(client, at, needs, probe))
            }
        }
    }

    /// The name of the folder itself (an export's id).
    pub fn folder_name(&self) -> String {
        let path = match self {
            ObjectStore::Local(path) => path.to_string_lossy().into_owned(),
            ObjectStore::S3 { at, .. } => at.prefix.clone(),
        };
        path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// Where a key is, for messages: a path or an `s3://` URI.
    pub fn describe(&self, key: &str) -> String {
        match self {
            ObjectStore::Local(path) => path.join(key).display().to_string(),
            ObjectStore::S3 { at, .. } => format!("{at}{key}"),
        }
    }

    /// A small object, whole; `None` if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut body) = self.body(key, None)? else { return Ok(None) };
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).with_context(|| format!("reading {}", self.describe(key)))?;
        Ok(Some(bytes))
    }

    /// An object that must exist, as a stream of its stored bytes. For S3,
    /// a differing `etag` (the object was replaced) is refused before reading.
    pub fn reader(&self, key: &str, etag: Option<&str>) -> Result<Box<dyn Read + Send>> {
        self.body(key, etag)?.ok_or_else(|| anyhow!("reading {}: no such object", self.describe(key)))
    }

    fn body(&self, key: &str, etag: Option<&str>) -> Result<Option<Box<dyn Read + Send>>> {
        match self {
            ObjectStore::Local(path) => match std::fs::File::open(path.join(key)) {
                Ok(file) => Ok(Some(Box::new(file))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow!("opening {}: {e}", self.describe(key))),
            },
            ObjectStore::S3 { client, at, runtime } => {
                let sent = runtime.block_on(get_object(client, &at.bucket, &format!("{}{key}", at.prefix)));
                let got = match sent {
                    Ok(got) => got,
                    Err(GetError::Missing) => return Ok(None),
                    Err(GetError::Denied(e)) => bail!(
                        "access denied reading {}: sluice needs s3:GetObject on it, and s3:ListBucket on \
                         bucket {} to tell a missing object from a forbidden one: {e}",
                        self.describe(key),
                        at.bucket
                    ),
                    Err(GetError::Failed(e)) => bail!("reading {}: {e}", self.describe(key)),
                };
                if let (Some(want), Some(have)) = (etag, got.e_tag())
                    && want.trim_matches('"') != have.trim_matches('"')
                {
                    bail!(
                        "{} has ETag {have}, but the export's manifest says {want}: the object was replaced",
                        self.describe(key)
                    );
                }
                let etag = got.e_tag().map(str::to_owned);
                let length = got.content_length().and_then(|n| u64::try_from(n).ok());
                let body = bridge(got.body, runtime.handle());
                Ok(Some(Box::new(Resuming {
                    client: client.clone(),
                    bucket: at.bucket.clone(),
                    key: format!("{}{key}", at.prefix),
                    etag,
                    runtime: runtime.handle().clone(),
                    body,
                    length,
                    read: 0,
                    retries: READ_RETRIES,
                    broken: false,
                })))
            }
        }
    }

    /// Writes an object whole: readers never see part of one.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            ObjectStore::Local(root) => {
                let path = root.join(key);
                let dir = path.parent().expect("keys have a folder");
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let partial = path.with_extension("partial");
                std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))
            }
            ObjectStore::S3 { client, at, runtime } => {
                let put = client
                    .put_object()
                    .bucket(&at.bucket)
                    .key(format!("{}{key}", at.prefix))
                    .body(bytes.into());
                runtime
                    .block_on(put.send())
                    .map(drop)
                    .map_err(|e| anyhow!("writing {}: {}", self.describe(key), crate::aws::describe(&e)))
            }
        }
    }

    /// Removes an object; one that is not there is fine.
    pub fn delete(&self, key: &str) -> Result<()> {
        match self {
            ObjectStore::Local(root) => match std::fs::remove_file(root.join(key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(anyhow!("removing {}: {e}", self.describe(key)))
                }
                _ => Ok(()),
            },
            ObjectStore::S3 { client, at, runtime } => {
                let delete = client.delete_object().bucket(&at.bucket).key(format!("{}{key}", at.prefix));
                runtime
                    .block_on(delete.send())
                    .map(drop)
                    .map_err(|e| anyhow!("removing {}: {}", self.describe(key), crate::aws::describe(&e)))
            }
        }
    }
}

/// Times a broken object read is resumed before the error stands.
const READ_RETRIES: u32 = 5;

fn bridge(body: aws_sdk_s3::primitives::ByteStream, runtime: &Handle) -> Box<dyn Read + Send> {
    Box::new(tokio_util::io::SyncIoBridge::new_with_handle(body.into_async_read(), runtime.clone()))
}

/// An S3 object's body that outlives a broken connection: when a read fails
/// mid-object, S3 is asked for the rest (`Range` from the first byte not yet
/// read, `If-Match` the version being read), so a long export file goes on
/// where it stopped instead of failing the load.
struct Resuming {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    etag: Option<String>,
    runtime: Handle,
    body: Box<dyn Read + Send>,
    /// The object's size, when S3 said.
    length: Option<u64>,
    /// Bytes handed out so far.
    read: u64,
    retries: u32,
    /// Whether a test already broke this read (`FAILPOINTS=objects::s3_read=return`).
    broken: bool,
}

impl Resuming {
    fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // A test's broken connection: once per object, past its first 16 KiB.
        fail::fail_point!("objects::s3_read", !self.broken && self.read >= 16 << 10, |_| {
            self.broken = true;
            Err(std::io::Error::other("injected: the connection broke"))
        });
        self.body.read(buf)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={}-", self.read))
            .set_if_match(self.etag.clone());
        let got = self
            .runtime
            .block_on(request.send())
            .map_err(|e| std::io::Error::other(format!("resuming: {}", crate::aws::describe(&e))))?;
        self.body = bridge(got.body, &self.runtime);
        Ok(())
    }
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.read_body(buf) {
                Ok(n) => {
                    self.read += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Broken after the last byte: there is nothing left to ask for.
                Err(_) if self.length == Some(self.read) => return Ok(0),
                Err(e) if self.retries > 0 => {
                    self.retries -= 1;
                    tracing::warn!(
                        "reading s3://{}/{} broke after {} bytes ({e}); resuming there in {pause:?}",
                        self.bucket,
                        self.key,
                        self.read
                    );
                    std::thread::sleep(pause);
                    pause *= 2;
                    if let Err(e) = self.reopen() {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
