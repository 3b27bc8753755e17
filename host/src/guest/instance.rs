//! One component instance serving one table: its store, memory cap, time
//! budget and the host functions it may call.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Transformer, TransformerPre, host, types};
use super::fetch::{Fetch, FetchError};
use super::stderr::StderrTail;
use super::{GuestLimits, TableSettings, isolate};
use crate::record::{Change, Column, Format, Operation, Order, Outcome, SourceRecord, Value};

/// What a store holds for its instance.
pub(super) struct State {
    wasi: WasiCtx,
    resources: ResourceTable,
    memory: MemoryCap,
    clock: CallClock,
    table: Arc<str>,
    /// What `fetch` may read; `None` refuses every URI.
    fetch: Option<Fetch>,
}

/// The time a call has used, for its budget: the guest's own, not the
/// host's (a `fetch` waiting on S3 is not the guest looping), and time the
/// guest ran, read from its thread's CPU clock: on a busy machine the wall
/// clock also counts time the thread waited for a core, which would fault
/// valid records.
struct CallClock {
    started: Duration,
    in_host: Duration,
    budget: Duration,
}

impl CallClock {
    fn new(budget: Duration) -> Self {
        CallClock { started: thread_cpu_time(), in_host: Duration::ZERO, budget }
    }

    fn exhausted(&self) -> bool {
        thread_cpu_time().saturating_sub(self.started).saturating_sub(self.in_host) >= self.budget
    }
}

/// CPU time this thread has run.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.resources }
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let table = &*self.table;
        let message = truncate(&message, 4096);
        match level {
            types::LogLevel::Trace => tracing::trace!(target: "sluice::guest", table, "{message}"),
            types::LogLevel::Debug => tracing::debug!(target: "sluice::guest", table, "{message}"),
            types::LogLevel::Info => tracing::info!(target: "sluice::guest", table, "{message}"),
            types::LogLevel::Warn => tracing::warn!(target: "sluice::guest", table, "{message}"),
            types::LogLevel::Error => tracing::error!(target: "sluice::guest", table, "{message}"),
        }
    }

    fn fetch(&mut self, uris: Vec<String>) -> Vec<Result<Vec<u8>, types::FetchError>> {
        let began = thread_cpu_time();
        let fetched = self.fetch_now(uris);
        self.clock.in_host += thread_cpu_time().saturating_sub(began);
        fetched
    }
}

impl State {
    fn fetch_now(&mut self, uris: Vec<String>) -> Vec<Result<Vec<u8>, types::FetchError>> {
        let Some(fetcher) = &self.fetch else {
            let refuse = |uri: &String| {
                Err(types::FetchError::Refused(format!(
                    "{uri}: table {} has no [tables.join] prefix allowing fetches",
                    self.table
                )))
            };
            return uris.iter().map(refuse).collect();
        };
        fetcher
            .fetch_all(&uris)
            .into_iter()
            .map(|r| {
                r.map(|bytes| bytes.to_vec()).map_err(|e| match e {
                    FetchError::Refused(why) => types::FetchError::Refused(why),
                    FetchError::NotFound => types::FetchError::NotFound,
                    FetchError::TooLarge(n) => types::FetchError::TooLarge(n),
                    FetchError::Failed(why) => types::FetchError::Failed(why),
                })
            })
            .collect()
    }
}

/// Caps an instance's linear memory, remembering whether the cap was hit so
/// that the failure can be explained.
struct MemoryCap {
    bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.hit |= desired > self.bytes;
        Ok(desired <= self.bytes)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A call that failed: the reason, for logs and dead letters, and whether
/// it ran out of time (a loop) rather than trapping.
pub(super) struct Fault {
    pub reason: String,
    pub timed_out: bool,
}

/// An instance of a transform serving one table, reused across batches.
pub struct TableGuest {
    pre: TransformerPre<State>,
    transform: String,
    settings: TableSettings,
    limits: GuestLimits,
    store: Store<State>,
    instance: Transformer,
    stderr: StderrTail,
    fetch: Option<Fetch>,
}

impl TableGuest {
    pub(super) fn start(
        pre: TransformerPre<State>,
        transform: String,
        settings: TableSettings,
        limits: GuestLimits,
    ) -> Result<Self> {
        let (store, instance, stderr) = spawn(&pre, &settings, &limits, None)
            .map_err(|e| anyhow!("table {}: transform {transform}: {e:#}", settings.source_table))?;
        Ok(TableGuest { pre, transform, settings, limits, store, instance, stderr, fetch: None })
    }

    /// Another instance of the same transform for the same table, with the
    /// same settings, limits and `fetch`.
    pub(super) fn another(&self) -> Result<TableGuest> {
        let mut guest =
            TableGuest::start(self.pre.clone(), self.transform.clone(), self.settings.clone(), self.limits)?;
        if let Some(fetch) = &self.fetch {
            guest.allow_fetch(fetch.clone());
        }
        Ok(guest)
    }

    /// Lets the guest's `fetch` read what `fetch` allows (the S3 join).
    pub fn allow_fetch(&mut self, fetch: Fetch) {
        self.store.data_mut().fetch = Some(fetch.clone());
        self.fetch = Some(fetch);
    }

    pub fn table(&self) -> &str {
        &self.settings.source_table
    }

    pub fn transform_name(&self) -> &str {
        &self.transform
    }

    /// Transforms a batch into one outcome per record; a record the guest
    /// fails on gets [`Outcome::Fault`]. Failures are narrowed down on fresh
    /// instances (see `isolate.rs`); an `Err` means no fresh instance could
    /// be started.
    pub fn transform(&mut self, batch: u64, records: &mut [SourceRecord]) -> Result<Vec<Outcome>> {
        let wit: Vec<types::SourceRecord> = records
            .iter_mut()
            .map(|r| types::SourceRecord {
                payload: std::mem::take(&mut r.payload),
                sequence: std::mem::take(&mut r.sequence),
                format: match &r.format {
                    Format::StreamChange => types::RecordFormat::StreamChange,
                    Format::ExportLine(e) => types::RecordFormat::ExportLine(types::ExportInfo {
                        export_time_micros: e.export_micros,
                        incremental: e.incremental,
                    }),
                },
            })
            .collect();
        let result = isolate::run(self, batch, &wit);
        // Hand the bytes back: the sink stores them as `raw_payload`.
        for (record, w) in records.iter_mut().zip(wit) {
            record.payload = w.payload;
            record.sequence = w.sequence;
        }
        result
    }

    /// One call with its time budget, no isolation.
    pub(super) fn call(&mut self, records: &[types::SourceRecord]) -> Result<Vec<types::Outcome>, Fault> {
        self.store.data_mut().clock = CallClock::new(self.limits.call_budget(records.len()));
        self.store.set_epoch_deadline(1);
        match self.instance.sluice_transform_transform().call_transform(&mut self.store, records) {
            Ok(outcomes) if outcomes.len() == records.len() => Ok(outcomes),
            Ok(outcomes) => Err(Fault {
                reason: format!(
                    "the transform returned {} outcomes for {} records",
                    outcomes.len(),
                    records.len()
                ),
                timed_out: false,
            }),
            Err(e) => Err(self.explain(&e)),
        }
    }

    /// Replaces the instance after a failure: its memory may be corrupt.
    pub(super) fn restart(&mut self) -> Result<()> {
        let (store, instance, stderr) = spawn(&self.pre, &self.settings, &self.limits, self.fetch.clone())
            .map_err(|e| anyhow!("table {}: restarting transform {}: {e:#}", self.table(), self.transform))?;
        (self.store, self.instance, self.stderr) = (store, instance, stderr);
        Ok(())
    }

    fn explain(&mut self, e: &wasmtime::Error) -> Fault {
        tracing::debug!(table = self.table(), "guest failure in detail: {e:#}");
        let timed_out = matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt));
        let what = if self.store.data().memory.hit {
            format!("exceeded its memory cap of {} MiB", self.limits.memory_bytes >> 20)
        } else if timed_out {
            format!("exceeded its time budget of {} ms", self.store.data().clock.budget.as_millis())
        } else {
            format!("trapped: {}", e.root_cause())
        };
        let reason = match self.stderr.take() {
            said if said.is_empty() => format!("the transform {what}"),
            said => format!("the transform {what}; it wrote: {said}"),
        };
        Fault { reason, timed_out }
    }
}

/// A new store and instance, configured for the table.
fn spawn(
    pre: &TransformerPre<State>,
    settings: &TableSettings,
    limits: &GuestLimits,
    fetch: Option<Fetch>,
) -> Result<(Store<State>, Transformer, StderrTail)> {
    let stderr = StderrTail::default();
    let wasi = WasiCtx::builder()
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = State {
        wasi,
        resources: ResourceTable::new(),
        memory: MemoryCap { bytes: limits.memory_bytes, hit: false },
        clock: CallClock::new(limits.time_budget),
        table: settings.source_table.as_str().into(),
        fetch,
    };
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.memory);
    // Checked at every epoch tick: the guest's own time against its budget.
    store.epoch_deadline_callback(|cx| {
        Ok(if cx.data().clock.exhausted() { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(1) })
    });
    store.set_epoch_deadline(1);
    let instance = match pre.instantiate(&mut store) {
        Ok(instance) => instance,
        Err(_) if store.data().memory.hit => anyhow::bail!(
            "the component needs more memory to start than its memory cap of {} MiB \
             ([guest] memory_limit_mb)",
            limits.memory_bytes >> 20
        ),
        Err(e) => return Err(e.into()),
    };
    let config = types::TableConfig {
        source_table: settings.source_table.clone(),
        target_table: settings.target_table.clone(),
        keys: settings.keys.clone(),
        settings: settings
            .settings
            .iter()
            .map(|(name, value)| types::Setting { name: name.clone(), value: value.clone() })
            .collect(),
    };
    instance
        .sluice_transform_transform()
        .call_configure(&mut store, &config)
        .map_err(anyhow::Error::from)?
        .map_err(|msg| anyhow!("the transform rejected its settings: {msg}"))?;
    Ok((store, instance, stderr))
}

pub(super) fn outcome(o: types::Outcome) -> Outcome {
    match o {
        types::Outcome::Row(r) => Outcome::Row(Change {
            table: r.table,
            key: r.key,
            operation: match r.operation {
                types::Operation::Upsert => Operation::Upsert,
                types::Operation::Delete => Operation::Delete,
                types::Operation::TtlDelete => Operation::TtlDelete,
            },
            order: Order { micros: r.order.micros, tiebreak: r.order.tiebreak },
            event_name: r.event_name,
            event_id: r.event_id,
            new_image: r.new_image,
            old_image: r.old_image,
            error: r.error,
            extra: r
                .extra
                .into_iter()
                .map(|c| Column {
                    name: c.name,
                    value: match c.value {
                        types::Value::Null => Value::Null,
                        types::Value::Boolean(b) => Value::Bool(b),
                        types::Value::Integer(i) => Value::Integer(i),
                        types::Value::Text(t) => Value::Text(t),
                        types::Value::Json(j) => Value::Json(j),
                    },
                })
                .collect(),
        }),
        types::Outcome::Skip(reason) => Outcome::Skip(reason),
        types::Outcome::Error(reason) => Outcome::Error(reason),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
