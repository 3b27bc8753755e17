//! The host side of the `fetch` import: objects a guest may read, for the
//! S3 join. Only URIs under the table's `[tables.join] prefix` are read;
//! a batch's objects are fetched concurrently, each at most once, and kept
//! in a cache bounded by bytes, so an object named by many records is read
//! once. Nothing is ever listed: only the objects records name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::manifest::JoinPlan;
use crate::objects::{Access, BoundedGetError, S3Prefix, check_access, get_bounded};

/// Objects fetched at once.
const CONCURRENCY: usize = 16;

/// Why an object could not be had; mirrors the WIT's `fetch-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Refused(String),
    NotFound,
    TooLarge(u64),
    Failed(String),
}

type Fetched = Result<Arc<Vec<u8>>, FetchError>;

/// What a guest's `fetch` reads.
#[derive(Clone)]
pub enum Fetch {
    /// Objects under the table's `[tables.join]` prefix, in S3.
    Join(Arc<Fetcher>),
    /// A test case's fixtures: URI to bytes, or `None` for not found.
    Fixtures(Arc<HashMap<String, Option<Vec<u8>>>>),
}

impl Fetch {
    /// One result per URI, in order.
    pub fn fetch_all(&self, uris: &[String]) -> Vec<Fetched> {
        match self {
            Fetch::Join(fetcher) => fetcher.fetch_all(uris),
            Fetch::Fixtures(fixtures) => uris
                .iter()
                .map(|uri| match fixtures.get(uri) {
                    Some(Some(bytes)) => Ok(Arc::new(bytes.clone())),
                    Some(None) => Err(FetchError::NotFound),
                    None => Err(FetchError::Refused(format!("{uri}: the case has no fixture for it"))),
                })
                .collect(),
        }
    }
}

pub struct Fetcher {
    plan: JoinPlan,
    client: aws_sdk_s3::Client,
    cache: Mutex<Cache>,
}

struct Cache {
    entries: LruCache<String, Fetched>,
    bytes: usize,
    budget: usize,
}

impl Fetcher {
    pub fn new(plan: &JoinPlan) -> anyhow::Result<Arc<Self>> {
        let client = crate::aws::s3_client();
        // A missing document is `{}`, but S3 says "missing" only to callers
        // that may list: without that, every one would read as denied.
        crate::aws::block_on(check_access(&client, &plan.prefix, &[Access::List], ""))?;
        let cache = Cache { entries: LruCache::unbounded(), bytes: 0, budget: plan.cache_bytes };
        Ok(Arc::new(Fetcher { plan: plan.clone(), client, cache: Mutex::new(cache) }))
    }

    /// One result per URI, in order; each distinct URI is read at most once.
    pub fn fetch_all(&self, uris: &[String]) -> Vec<Fetched> {
        let mut have: HashMap<String, Fetched> = HashMap::new();
        let mut wanted: Vec<(String, S3Prefix)> = Vec::new();
        {
            let mut cache = self.cache.lock().expect("fetch cache lock");
            for uri in uris {
                if have.contains_key(uri) || wanted.iter().any(|(u, _)| u == uri) {
                    continue;
                }
                if let Some(hit) = cache.entries.get(uri) {
                    have.insert(uri.clone(), hit.clone());
                    continue;
                }
                match self.allowed(uri) {
                    Ok(at) => wanted.push((uri.clone(), at)),
                    Err(refused) => {
                        have.insert(uri.clone(), Err(refused));
                    }
                }
            }
        }
        if !wanted.is_empty() {
            tracing::debug!(fetched = wanted.len(), cached = have.len(), "join: fetching objects");
            let fetched = crate::aws::block_on(self.get_all(wanted));
            let mut cache = self.cache.lock().expect("fetch cache lock");
            for (uri, result) in fetched {
                cache.insert(uri.clone(), result.clone());
                have.insert(uri, result);
            }
        }
        uris.iter().map(|uri| have[uri].clone()).collect()
    }

    /// The bucket and key of a URI under the allowed prefix.
    fn allowed(&self, uri: &str) -> Result<S3Prefix, FetchError> {
        let refuse = |why: &str| FetchError::Refused(format!("{uri}: {why}"));
        let allowed = self.plan.prefix.to_string();
        let Some(rest) = uri.strip_prefix("s3://") else { return Err(refuse("not an s3:// URI")) };
        let Some((bucket, key)) = rest.split_once('/') else { return Err(refuse("no object key")) };
        if key.is_empty() || key.split('/').any(|part| part == ".." || part == ".") {
            return Err(refuse("not a plain object key"));
        }
        if !uri.starts_with(&allowed) {
            return Err(refuse(&format!("outside the join's prefix {allowed}")));
        }
        Ok(S3Prefix { bucket: bucket.to_owned(), prefix: key.to_owned() })
    }

    async fn get_all(&self, wanted: Vec<(String, S3Prefix)>) -> Vec<(String, Fetched)> {
        use futures_util::StreamExt;
        futures_util::stream::iter(wanted)
            .map(|(uri, at)| async move {
                let got = tokio::time::timeout(self.plan.timeout, self.get(&at)).await;
                let result = got.unwrap_or_else(|_| {
                    Err(FetchError::Failed(format!("timed out after {:?}", self.plan.timeout)))
                });
                (uri, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    async fn get(&self, at: &S3Prefix) -> Fetched {
        let max = self.plan.max_object_bytes;
        match get_bounded(&self.client, &at.bucket, &at.prefix, max).await {
            Ok(bytes) => Ok(Arc::new(bytes)),
            Err(BoundedGetError::Missing) => Err(FetchError::NotFound),
            Err(BoundedGetError::TooLarge(len)) => Err(FetchError::TooLarge(len)),
            Err(e @ (BoundedGetError::Denied(_) | BoundedGetError::Failed(_))) => {
                Err(FetchError::Failed(e.to_string()))
            }
        }
    }
}

impl Cache {
    fn insert(&mut self, uri: String, result: Fetched) {
        let size = |r: &Fetched| r.as_ref().map_or(64, |b| b.len() + 64);
        self.bytes += size(&result);
        if let Some((_, old)) = self.entries.push(uri, result) {
            self.bytes -= size(&old);
        }
        while self.bytes > self.budget && self.entries.len() > 1 {
            match self.entries.pop_lru() {
                Some((_, old)) => self.bytes -= size(&old),
                None => break,
            }
        }
    }
}
