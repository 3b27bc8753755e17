//! A Redshift Data API stand-in for sluice's tests.
//!
//! It serves the real AWS JSON 1.1 protocol on 127.0.0.1, so the AWS SDK
//! that sluice uses talks to it unchanged, and runs the SQL on PostgreSQL.
//! Redshift's forms are made to work, and its limits enforced, by objects
//! installed in the database (a `super` domain, `json_parse`, ...) rather
//! than by rewriting SQL; only column types in CREATE/ALTER TABLE are
//! rewritten (to byte-counting domains), and `COPY ... FROM 's3://...'` is
//! carried out by the stand-in itself. The Data API's own limits (request
//! size, sign-in, result rows) are checked by its HTTP layer. See the README
//! for exactly what it emulates, where each limit comes from, and what it
//! cannot prove.
//!
//! Tests start one with [`StandIn::start`] and point the SDK at
//! [`StandIn::endpoint`] (`AWS_ENDPOINT_URL_REDSHIFT_DATA`).

mod api;
mod compat;
mod copy;
mod ddl;
mod engine;
mod registry;
mod results;
mod sql;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::registry::Registry;

/// Where the stand-in runs SQL and reads COPY's objects, and the cluster settings it mirrors.
///
/// Build it with [`Config::new`] or struct update syntax over [`Config::default`], so that
/// fields added later keep their defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The PostgreSQL database every statement runs in, whatever `Database` the request names.
    pub postgres_url: String,
    /// The S3 endpoint COPY reads from (path-style), e.g. moto's.
    pub s3_endpoint: Option<String>,
    /// The cluster's AWS Region: a COPY from a bucket in another Region needs `REGION`.
    pub region: String,
    /// The longest string a SUPER value may hold, in bytes, and so the longest VARCHAR that
    /// JSON_PARSE takes and JSON_SERIALIZE / FROM_VARBYTE return: 65,535 by default, up to
    /// 16,000,000 where a cluster opts in to large SUPER strings.
    pub super_max_string_bytes: usize,
    /// How long every Data API request takes to be answered: a slow
    /// warehouse, for the benchmarks (zero by default).
    pub request_latency: std::time::Duration,
}

/// Redshift's default limit on a string in SUPER (and on a VARCHAR).
pub const DEFAULT_SUPER_MAX_STRING_BYTES: usize = 65_535;

/// The most a cluster can raise it to.
pub const MAX_SUPER_MAX_STRING_BYTES: usize = 16_000_000;

impl Default for Config {
    fn default() -> Config {
        Config {
            postgres_url: String::new(),
            s3_endpoint: None,
            region: "us-east-1".into(),
            super_max_string_bytes: DEFAULT_SUPER_MAX_STRING_BYTES,
            request_latency: std::time::Duration::ZERO,
        }
    }
}

impl Config {
    /// The defaults (region us-east-1, no S3, default SUPER limits) on `postgres_url`.
    pub fn new(postgres_url: impl Into<String>) -> Config {
        Config { postgres_url: postgres_url.into(), ..Config::default() }
    }
}

/// A service error that [`StandIn::fail_next_calls`] makes ExecuteStatement and
/// BatchExecuteStatement answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// HTTP 500 with `StatementId`: the statement is created and ends FAILED, nothing committed.
    ExecuteStatementException,
    /// As `ExecuteStatementException`, under the batch operation's error name.
    BatchExecuteStatementException,
    /// HTTP 500: the database could not be reached; no statement is created.
    DatabaseConnectionException,
    /// HTTP 500: no statement is created.
    InternalServerException,
    /// HTTP 400 `Rate exceeded`: no statement is created.
    ThrottlingException,
    /// HTTP 400: too many statements running; no statement is created.
    ActiveStatementsExceededException,
}

/// A running stand-in on 127.0.0.1 with its own tokio runtime on a background thread.
///
/// Dropping it stops the server; statements still queued are dropped.
pub struct StandIn {
    endpoint: String,
    registry: Arc<Registry>,
    /// Dropped with the stand-in, which ends the server thread.
    _stop: oneshot::Sender<()>,
}

impl StandIn {
    /// Binds 127.0.0.1:0, installs the compatibility objects into the database, starts serving.
    pub fn start(config: Config) -> anyhow::Result<StandIn> {
        StandIn::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// As [`StandIn::start`], on a chosen address (the binary's `--listen`).
    pub fn start_on(config: Config, listen: SocketAddr) -> anyhow::Result<StandIn> {
        anyhow::ensure!(
            (DEFAULT_SUPER_MAX_STRING_BYTES..=MAX_SUPER_MAX_STRING_BYTES)
                .contains(&config.super_max_string_bytes),
            "super_max_string_bytes is {}; Redshift allows {DEFAULT_SUPER_MAX_STRING_BYTES} (the default) up to {MAX_SUPER_MAX_STRING_BYTES}",
            config.super_max_string_bytes
        );
        let listener = std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        listener.set_nonblocking(true).context("making the listener non-blocking")?;
        let endpoint = format!("http://{}", listener.local_addr().context("the listener's address")?);
        let registry = Arc::new(Registry::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let shared = registry.clone();
        std::thread::Builder::new()
            .name("redshift-standin".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("redshift-standin-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e).context("building the runtime")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let server = match prepare(config, shared, listener).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        result = server => if let Err(e) = result {
                            tracing::error!("the Redshift stand-in stopped serving: {e}");
                        },
                        _ = stop_rx => {}
                    }
                });
            })
            .context("spawning the stand-in's thread")?;
        ready_rx.recv().context("the stand-in's thread ended while starting")??;
        Ok(StandIn { endpoint, registry, _stop: stop_tx })
    }

    /// e.g. "http://127.0.0.1:41234" — what AWS_ENDPOINT_URL_REDSHIFT_DATA is set to.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Fault injection for retry tests: the next `n` API calls (any operation) fail with
    /// HTTP 400 {"__type":"ThrottlingException","message":"Rate exceeded"}.
    pub fn throttle_next(&self, n: u32) {
        self.registry.throttle_next(n);
    }

    /// Fault injection: the next `n` *statements* (ExecuteStatement or one BatchExecuteStatement)
    /// end FAILED with the given error text, as if the database had failed them.
    pub fn fail_next_statements(&self, n: u32, error: &str) {
        self.registry.fail_next_statements(n, error);
    }

    /// Fault injection: the next `n` ExecuteStatement / BatchExecuteStatement calls that pass
    /// validation answer with the service error `kind` (see [`CallFault`] for what each one
    /// leaves behind). Other operations are not affected.
    pub fn fail_next_calls(&self, n: u32, kind: CallFault) {
        self.registry.fail_next_calls(n, kind);
    }

    /// Fault injection: the next `n` ExecuteStatement / BatchExecuteStatement calls are accepted
    /// and run as usual, but answer HTTP 500 InternalServerException instead of the `Id`, as if
    /// the response had been lost; the SDK retries that with the same `ClientToken`, which
    /// returns the statement's `Id` and runs nothing again.
    pub fn lose_next_responses(&self, n: u32) {
        self.registry.lose_next_responses(n, "");
    }

    /// As [`StandIn::lose_next_responses`], for the next `n` calls whose SQL
    /// contains `needle` only.
    pub fn lose_next_responses_to(&self, n: u32, needle: &str) {
        self.registry.lose_next_responses(n, needle);
    }

    /// The SQL texts of every statement created, in order (for tests that check what was
    /// sent); calls refused before a statement was created add nothing.
    pub fn statements(&self) -> Vec<String> {
        self.registry.log()
    }
}

/// Installs the compatibility objects, starts the executor, and returns the
/// server, ready to be polled.
async fn prepare(
    config: Config,
    registry: Arc<Registry>,
    listener: std::net::TcpListener,
) -> anyhow::Result<impl Future<Output = std::io::Result<()>>> {
    let engine = Arc::new(Engine::new(registry.clone(), &config)?);
    let client = engine
        .connect()
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.postgres_url))?;
    compat::install(&client).await?;
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(engine.work(queue));
    let listener = tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
    let router = api::router(Arc::new(api::Api { registry, jobs, latency: config.request_latency }));
    Ok(async move { axum::serve(listener, router).await })
}
