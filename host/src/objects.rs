//! Objects under an S3 prefix, or files under a local folder, behind one
//! blocking interface: the export source reads through it (on plain reader
//! threads that decompress with `std::io`), the S3 sink and Redshift's
//! staging write through it, and the S3 join's fetcher reads with
//! [`get_bounded`]. S3 bodies stream through a bridge from the SDK's async
//! reader. Every call runs on the process's one AWS runtime.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::runtime::Handle;

/// A folder: local, or an S3 prefix (an export's folder, the S3 sink's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Prefix),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3(prefix) => write!(f, "{prefix}"),
        }
    }
}

/// `s3://bucket/prefix/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl std::fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Why a text is not an `s3://bucket/prefix/`.
#[derive(Debug, thiserror::Error)]
pub enum BadS3Uri {
    #[error("{0:?} is not an s3:// URI")]
    NotS3(String),
    #[error("{0:?} names no bucket")]
    NoBucket(String),
}

/// `s3://bucket/prefix/`: a bucket, and a key prefix that is empty or ends in `/`.
pub fn parse_s3_prefix(uri: &str) -> Result<S3Prefix, BadS3Uri> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| BadS3Uri::NotS3(uri.to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(BadS3Uri::NoBucket(uri.to_owned()));
    }
    let prefix =
        if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    Ok(S3Prefix { bucket: bucket.to_owned(), prefix })
}

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
    pub fn action(self) -> &'static str {
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
    S3 { client: aws_sdk_s3::Client, at: S3Prefix },
}

impl ObjectStore {
    pub fn open(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Local(path) => ObjectStore::Local(path.clone()),
            Location::S3(at) => ObjectStore::S3 { client: crate::aws::s3_client(), at: at.clone() },
        })
    }

    /// Checks the S3 permissions `needs` under the folder (see
    /// [`check_access`]); a local folder needs none.
    pub fn check(&self, needs: &[Access], probe: &str) -> Result<()> {
        match self {
            ObjectStore::Local(_) => Ok(()),
            ObjectStore::S3 { client, at } => crate::aws::block_on(check_access(client, at, needs, probe)),
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
            ObjectStore::S3 { client, at } => {
                let runtime = crate::aws::runtime();
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
            ObjectStore::S3 { client, at } => {
                let put = client
                    .put_object()
                    .bucket(&at.bucket)
                    .key(format!("{}{key}", at.prefix))
                    .body(bytes.into());
                crate::aws::block_on(put.send())
                    .map(drop)
                    .map_err(|e| anyhow!("writing {}: {}", self.describe(key), crate::aws::describe(&e)))
            }
        }
    }

    /// A local removal's result: what was not there is removed already.
    fn removed(&self, key: &str, result: std::io::Result<()>) -> Result<()> {
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow!("removing {}: {e}", self.describe(key)))
            }
            _ => Ok(()),
        }
    }

    /// Removes an object; one that is not there is fine.
    pub fn delete(&self, key: &str) -> Result<()> {
        match self {
            ObjectStore::Local(root) => self.removed(key, std::fs::remove_file(root.join(key))),
            ObjectStore::S3 { client, at } => {
                let delete = client.delete_object().bucket(&at.bucket).key(format!("{}{key}", at.prefix));
                crate::aws::block_on(delete.send())
                    .map(drop)
                    .map_err(|e| anyhow!("removing {}: {}", self.describe(key), crate::aws::describe(&e)))
            }
        }
    }

    /// Removes every object under `sub` (a key prefix ending in `/`).
    pub fn delete_prefix(&self, sub: &str) -> Result<()> {
        match self {
            ObjectStore::Local(root) => self.removed(sub, std::fs::remove_dir_all(root.join(sub))),
            ObjectStore::S3 { client, at } => crate::aws::block_on(async {
                let prefix = format!("{}{sub}", at.prefix);
                let mut token = None;
                loop {
                    let page = client
                        .list_objects_v2()
                        .bucket(&at.bucket)
                        .prefix(&prefix)
                        .set_continuation_token(token)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow!("listing {}: {}", self.describe(sub), crate::aws::describe(&e))
                        })?;
                    for key in page.contents().iter().filter_map(|o| o.key()) {
                        client.delete_object().bucket(&at.bucket).key(key).send().await.map_err(|e| {
                            anyhow!("removing s3://{}/{key}: {}", at.bucket, crate::aws::describe(&e))
                        })?;
                    }
                    token = page.next_continuation_token().map(str::to_owned);
                    if token.is_none() {
                        return Ok(());
                    }
                }
            }),
        }
    }

    /// The region of the folder's bucket, from GetBucketLocation
    /// (`s3:GetBucketLocation`; HeadBucket would need `s3:ListBucket` on the
    /// whole bucket); `None` for a local folder.
    pub fn region(&self) -> Result<Option<String>> {
        let ObjectStore::S3 { client, at } = self else { return Ok(None) };
        let location =
            crate::aws::block_on(client.get_bucket_location().bucket(&at.bucket).send()).map_err(|e| {
                anyhow!(
                    "finding the region of bucket {} (sluice needs s3:GetBucketLocation on arn:aws:s3:::{}): {}",
                    at.bucket,
                    at.bucket,
                    crate::aws::describe(&e)
                )
            })?;
        // No constraint is us-east-1; "EU" is the old name of eu-west-1.
        let region = match location.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1",
            Some("EU") => "eu-west-1",
            Some(region) => region,
        };
        Ok(Some(region.to_owned()))
    }
}

/// Why a bounded read found no bytes to give.
#[derive(Debug, thiserror::Error)]
pub enum BoundedGetError {
    #[error("no such object")]
    Missing,
    #[error("access denied (s3:GetObject): {0}")]
    Denied(String),
    #[error("the object is {0} bytes, over the limit")]
    TooLarge(u64),
    #[error("{0}")]
    Failed(String),
}

/// Reads a whole object of at most `max` bytes (the S3 join's documents):
/// a longer one is refused from its length, or after `max + 1` bytes if the
/// length was not given.
pub async fn get_bounded(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    max: u64,
) -> Result<Vec<u8>, BoundedGetError> {
    let out = get_object(client, bucket, key).await.map_err(|e| match e {
        GetError::Missing => BoundedGetError::Missing,
        GetError::Denied(e) => BoundedGetError::Denied(e),
        GetError::Failed(e) => BoundedGetError::Failed(e),
    })?;
    if let Some(len) = out.content_length().filter(|len| *len as u64 > max) {
        return Err(BoundedGetError::TooLarge(len as u64));
    }
    let mut body = out.body.into_async_read();
    let mut bytes = Vec::new();
    let mut limited = tokio::io::AsyncReadExt::take(&mut body, max + 1);
    tokio::io::AsyncReadExt::read_to_end(&mut limited, &mut bytes)
        .await
        .map_err(|e| BoundedGetError::Failed(format!("reading the object: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(BoundedGetError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
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
                        "reading s3://{}/{} broke after {} bytes ({e}); resuming there in {} ms",
                        self.bucket,
                        self.key,
                        self.read,
                        pause.as_millis()
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
