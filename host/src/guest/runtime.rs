//! The engine, linker and compile cache, built once per process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{Transformer, TransformerPre};
use super::cache::{CompileCache, sha256_hex};
use super::instance::{State, TableGuest};
use super::{GuestLimits, TableSettings, TransformRef};

/// How often the epoch advances; time budgets are counted in these ticks.
const TICK: Duration = Duration::from_millis(10);

pub struct GuestRuntime {
    engine: Engine,
    linker: Linker<State>,
    cache: CompileCache,
    loaded: HashMap<TransformRef, Loaded>,
    _ticker: Ticker,
}

/// A component ready to instantiate, and the SHA-256 of its bytes.
struct Loaded {
    pre: TransformerPre<State>,
    sha256: String,
}

impl GuestRuntime {
    /// A runtime caching compiled components in the default folder.
    pub fn new() -> Result<Self> {
        Self::with_cache(CompileCache::default_dir())
    }

    /// A runtime caching compiled components in `dir`, or not at all.
    pub fn with_cache(dir: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Epochs, not fuel: they cost 16-25% of run time here, fuel 29-50%.
        config.epoch_interruption(true);
        if std::env::var_os("SLUICE_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        Transformer::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)?;
        Ok(GuestRuntime {
            _ticker: Ticker::start(engine.clone()),
            engine,
            linker,
            cache: CompileCache::new(dir),
            loaded: HashMap::new(),
        })
    }

    /// Compiles (or loads from the cache) and links a component, once.
    pub fn load(&mut self, transform: &TransformRef) -> Result<()> {
        if !self.loaded.contains_key(transform) {
            let wasm = transform.wasm()?;
            if let Some(why) = not_a_component(&wasm) {
                bail!("{transform} {why}");
            }
            let sha256 = sha256_hex(&wasm);
            let component = self
                .cache
                .load(&self.engine, &wasm, &sha256, &transform.to_string())
                .with_context(|| format!("{transform} is not a valid component"))?;
            let pre = self
                .linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .and_then(|pre| TransformerPre::new(pre).map_err(anyhow::Error::from))
                .map_err(|e| match misfit(&self.engine, &component) {
                    Some(why) => anyhow!("{transform} {why}"),
                    None => e.context(format!("{transform} does not fit the {WORLD} world")),
                })?;
            self.loaded.insert(transform.clone(), Loaded { pre, sha256 });
        }
        Ok(())
    }

    /// A configured instance of `transform` for one table.
    pub fn instantiate(
        &mut self,
        transform: &TransformRef,
        settings: TableSettings,
        limits: GuestLimits,
    ) -> Result<TableGuest> {
        self.load(transform)?;
        let pre = self.loaded[transform].pre.clone();
        TableGuest::start(pre, transform.to_string(), settings, limits)
    }

    /// The SHA-256 of a loaded component's bytes.
    pub fn sha256(&self, transform: &TransformRef) -> Option<&str> {
        self.loaded.get(transform).map(|l| l.sha256.as_str())
    }
}

/// The WIT package and version this host speaks.
const WORLD: &str = "sluice:transform@0.2.0";

/// Why bytes are not a component, told so that the author knows what to do.
fn not_a_component(wasm: &[u8]) -> Option<String> {
    match wasm.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Some(
            "is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target \
             (cargo build --release --target wasm32-wasip2), with componentize-py, or wrap it with \
             `wasm-tools component new`"
                .into(),
        ),
        Some([0, b'a', b's', b'm', ..]) => None,
        _ => Some(format!("is not WebAssembly ({} bytes, without the \\0asm header)", wasm.len())),
    }
}

/// Why a component does not fit the world, when its imports or exports say
/// it plainly: another WIT version, an import sluice does not provide, or
/// a missing export.
fn misfit(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let (ours, version) = WORLD.split_once('@').expect("a versioned world");
    let interfaces = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .chain(ty.exports(engine).map(|(name, _)| name.to_owned()));
    for name in interfaces.collect::<Vec<_>>() {
        if let Some((_, theirs)) = name.strip_prefix(ours).and_then(|rest| rest.split_once('@'))
            && theirs != version
        {
            return Some(format!(
                "was built against {ours}@{theirs}; this sluice speaks {WORLD}: rebuild it with \
                 sluice-guest {} (or against this sluice's wit/)",
                &version[..version.rfind('.').unwrap_or(version.len())]
            ));
        }
    }
    let provided = |name: &str| name.starts_with("wasi:") || name.starts_with(&format!("{ours}/"));
    if let Some((name, _)) = ty.imports(engine).find(|(name, _)| !provided(name)) {
        return Some(format!(
            "imports {name}, which sluice does not provide (guests get only {ours}/host and an empty WASI)"
        ));
    }
    let export = format!("{ours}/transform@{version}");
    if ty.exports(engine).all(|(name, _)| name != export) {
        return Some(format!("does not export {export}: is it a sluice transform?"));
    }
    None
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Ticker { stop, thread: Some(thread) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
