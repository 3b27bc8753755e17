//! Compiled components on disk, so a run starts in a millisecond instead of
//! compiling for ~100 ms per component.
//!
//! Entries are keyed by the SHA-256 of the `.wasm` and of the engine's
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

    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, wasm).map_err(Into::into);
        };
        let path = dir.join(format!("{}.cwasm", key(engine, wasm)));
        if path.exists() {
            // SAFETY: the file was written by `store` below from our own
            // compilation, into a folder only this user can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::debug!(path = %path.display(), "recompiling: cached component unusable: {e}")
                }
            }
        }
        let compiled = engine.precompile_component(wasm).map_err(anyhow::Error::from)?;
        if let Err(e) = store(dir, &path, &compiled) {
            tracing::warn!(dir = %dir.display(), "cannot cache the compiled component: {e:#}");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(Into::into)
    }
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
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
    sha.0.update(wasm);
    sha.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
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
        cache.load(&engine, wasm).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].extension().is_some_and(|e| e == "cwasm"));

        std::fs::write(&entries[0], b"not a compiled component").unwrap();
        cache.load(&engine, wasm).unwrap();
        assert!(std::fs::read(&entries[0]).unwrap().len() > 1000, "the damaged entry was rewritten");
    }

    #[test]
    fn the_key_changes_with_the_component() {
        let engine = Engine::default();
        assert_ne!(key(&engine, b"one"), key(&engine, b"two"));
        assert_eq!(key(&engine, b"one"), key(&engine, b"one"));
    }
}
