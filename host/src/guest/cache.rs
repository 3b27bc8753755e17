//! Compiled components on disk, so a run starts in a millisecond instead of
//! compiling for ~100 ms per component.
//!
//! Entries are keyed by the SHA-256 of the `.wasm`'s digest and the engine's
//! compatibility hash (wasmtime version and settings), so a changed component
//! or a new host never loads a stale artifact. The folder is created private
//! (0700): loading a compiled artifact trusts it like native code.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(super) struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// `None` compiles every time.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The default folder: `$SLUICE_CACHE_DIR`, else the user's cache folder.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SLUICE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("sluice").join("components")))
    }

    /// The component `wasm` (named `what` in logs, `digest` its
    /// [`sha256_hex`]), compiled or from the cache.
    pub fn load(&self, engine: &Engine, wasm: &[u8], digest: &str, what: &str) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, wasm).map_err(Into::into);
        };
        let path = dir.join(format!("{}.cwasm", key(engine, digest)));
        if path.exists() {
            // SAFETY: the file was written by `store` below from our own
            // compilation, into a folder only this user can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    // Recently used entries are the last to be pruned.
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok(component);
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), "recompiling: cached component unusable: {e}")
                }
            }
        }
        // Large components (a Python one) take many seconds: say why we wait.
        tracing::info!(
            transform = what,
            bytes = wasm.len(),
            "compiling the component for this machine (once; it is cached)"
        );
        let began = std::time::Instant::now();
        let compiled = engine.precompile_component(wasm).map_err(anyhow::Error::from)?;
        tracing::info!(transform = what, took_ms = began.elapsed().as_millis() as u64, "compiled");
        if let Err(e) = store(dir, &path, &compiled).and_then(|()| prune(dir, MAX_CACHE_BYTES)) {
            tracing::warn!(dir = %dir.display(), "cannot cache the compiled component: {e:#}");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(Into::into)
    }
}

fn key(engine: &Engine, digest: &str) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only fed, never finished")
        }
    }
    let mut sha = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut sha);
    sha.0.update(digest.as_bytes());
    hex(&sha.0.finalize())
}

/// The SHA-256 of `bytes`, in hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The most the cache keeps; the least recently used entries go first.
const MAX_CACHE_BYTES: u64 = 1 << 30;

/// Removes the least recently used entries until the folder holds at most
/// `max` bytes (the newest entry always stays).
fn prune(dir: &Path, max: u64) -> Result<()> {
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    entries.sort();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    for (_, len, path) in &entries[..entries.len().saturating_sub(1)] {
        if total <= max {
            break;
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        total -= len;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), rand::random::<u64>()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::builtin;

    #[test]
    fn a_component_is_compiled_once_and_a_damaged_entry_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(dir.path().to_path_buf()));
        let engine = Engine::default();
        let wasm = builtin::lookup("ddb-json").unwrap().wasm;
        cache.load(&engine, wasm, &sha256_hex(wasm), "ddb-json").unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].extension().is_some_and(|e| e == "cwasm"));

        std::fs::write(&entries[0], b"not a compiled component").unwrap();
        cache.load(&engine, wasm, &sha256_hex(wasm), "ddb-json").unwrap();
        assert!(std::fs::read(&entries[0]).unwrap().len() > 1000, "the damaged entry was rewritten");
    }

    #[test]
    fn the_cache_keeps_its_size_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + n);
        for (name, age) in [("old", 1), ("used", 3), ("new", 2)] {
            let path = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, vec![0u8; 100]).unwrap();
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(at(age)).unwrap();
        }
        prune(dir.path(), 250).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["new.cwasm", "used.cwasm"]);
        prune(dir.path(), 0).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the newest entry stays");
    }

    #[test]
    fn the_key_changes_with_the_component() {
        let engine = Engine::default();
        assert_ne!(key(&engine, "one"), key(&engine, "two"));
        assert_eq!(key(&engine, "one"), key(&engine, "one"));
    }
}
