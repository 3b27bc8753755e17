//! PostgreSQL: the SQLite sink's guarantees on the database people run.
//!
//! A batch is one transaction: check the writer epoch, COPY the rows into a
//! temporary staging table per target, apply them with a few set-based
//! statements that keep the ordering guard (`sql.rs`), write dead letters
//! and checkpoints, commit. When the server goes away the sink reconnects
//! with backoff and retries the whole batch; if the lost commit had in fact
//! landed, the retry changes nothing, because every change is applied only
//! if it is at least as new as what is stored.

mod config;
mod sql;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result};
use postgres::error::SqlState;
use postgres::{Client, Transaction};

use super::retry::{Failure, retrying};
use super::{
    Applied, Asked, Claims, Fenced, Fencing, Inspector, LeaseLost, Rows, SameEvent, Sink, SinkError, Status,
    TableStatus, TargetTable, Writer, missing_columns, nul_in_document, nul_in_text, raw_text,
};
pub use config::{Config, MAX_NAME_BYTES, Secret, Section, redact_url};

use crate::columns::{self, Cell};
use crate::ident::quote;
use crate::record::{Checkpoint, DeleteMode, Row, SinkBatch, Value};

pub struct PostgresSink {
    config: Config,
    /// The quoted schema.
    schema: String,
    client: Option<Client>,
    pipeline: String,
    /// The writer epoch this run claimed; 0 when fenced by leases.
    epoch: i64,
    fencing: Fencing,
    targets: HashMap<String, TargetTable>,
    same_event: SameEvent,
}

impl PostgresSink {
    /// Connects on first use, so that a server still starting is waited for
    /// like one that goes away mid-run.
    /// Then creates what is missing and claims the pipeline's writer epoch.
    pub fn open(config: &Config, writer: &Writer) -> Result<Self> {
        let mut sink = Self::unconnected(config, writer.pipeline, writer.fencing);
        sink.same_event = writer.same_event;
        sink.prepare(writer.targets)?;
        Ok(sink)
    }

    /// The sink before anything is read or created.
    fn unconnected(config: &Config, pipeline: &str, fencing: Fencing) -> Self {
        PostgresSink {
            schema: quote(&config.schema),
            config: config.clone(),
            client: None,
            pipeline: pipeline.to_owned(),
            epoch: 0,
            fencing,
            targets: HashMap::new(),
            same_event: SameEvent::default(),
        }
    }

    /// Creates sluice's tables and the targets, reads their extra columns,
    /// and claims the writer epoch.
    fn prepare(&mut self, targets: &[(String, DeleteMode)]) -> Result<()> {
        let s = self.schema.clone();
        let mut ddl = vec![sql::state_schema(&s)];
        ddl.extend(targets.iter().map(|(name, _)| sql::create_target(&s, name)));
        self.retrying("creating sluice's tables", |sink| {
            let mut tx = sink.client()?.transaction().map_err(classify)?;
            tx.batch_execute(sql::DDL_LOCK).map_err(classify)?;
            for statement in &ddl {
                tx.batch_execute(statement).map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })?;
        let schema = self.config.schema.clone();
        for (name, deletes) in targets {
            let rows = self.retrying("reading the tables' columns", |sink| {
                let client = sink.client()?;
                client
                    .query(
                        "SELECT column_name FROM information_schema.columns \
                         WHERE table_schema = $1 AND table_name = $2",
                        &[&schema, name],
                    )
                    .map_err(classify)
            })?;
            let extras =
                rows.iter().map(|r| r.get::<_, String>(0)).filter(|c| !columns::is_standard(c)).collect();
            self.targets.insert(name.clone(), TargetTable { deletes: *deletes, extras });
        }
        if self.fencing == Fencing::Epoch {
            let pipeline = self.pipeline.clone();
            self.epoch = self.retrying("claiming the writer epoch", |sink| {
                let client = sink.client()?;
                client.query_one(&sql::claim_epoch(&s), &[&pipeline]).map(|r| r.get(0)).map_err(classify)
            })?;
        }
        Ok(())
    }

    /// The connection, opened (again) if needed.
    fn client(&mut self) -> Result<&mut Client, Failure> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.config)?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    fn retrying<T>(&mut self, what: &str, attempt: impl FnMut(&mut Self) -> Result<T, Failure>) -> Result<T> {
        retrying(self, what, attempt, |sink| sink.client = None)
    }

    fn add_columns(&mut self, rows: &[Row]) -> Result<(), Failure> {
        for (target, column, value) in missing_columns(rows, &self.targets) {
            let ty = match value {
                Value::Bool(_) => "boolean",
                Value::Integer(_) => "bigint",
                Value::Text(_) => "text",
                _ => "jsonb",
            };
            let statement = sql::add_column(&self.schema, &quote(target), column, ty);
            self.client()?.batch_execute(&statement).map_err(classify)?;
            self.targets.get_mut(target).expect("targets are prepared").extras.push(column.to_owned());
        }
        Ok(())
    }

    fn write_once(&mut self, batch: &SinkBatch) -> Result<Applied, Failure> {
        self.client()?;
        let client = self.client.as_mut().expect("connected");
        let mut tx = client.transaction().map_err(classify)?;
        let s = &self.schema;
        match self.fencing {
            Fencing::Epoch => {
                let epoch: i64 = tx.query_one(&sql::fence(s), &[&self.pipeline]).map_err(classify)?.get(0);
                if epoch != self.epoch {
                    let fenced = Fenced { pipeline: self.pipeline.clone(), ours: self.epoch, theirs: epoch };
                    return Err(Failure::Stop(fenced.into()));
                }
            }
            Fencing::Leases => {
                // In partition order, so that two workers' transactions lock
                // the rows they share in the same order and never deadlock.
                let mut leased: Vec<(&str, i64)> =
                    batch.checkpoints.iter().filter_map(|c| Some((c.partition.as_str(), c.lease?))).collect();
                leased.sort_unstable();
                for (partition, lease) in leased {
                    hold_lease(&mut tx, s, &self.pipeline, partition, lease)?;
                }
            }
        }
        let mut applied = Applied::default();
        let mut by_target: Vec<(&str, Vec<&Row>)> = Vec::new();
        for row in &batch.rows {
            match by_target.iter_mut().find(|(t, _)| *t == &*row.target) {
                Some((_, group)) => group.push(row),
                None => by_target.push((&row.target, vec![row])),
            }
        }
        for (i, (target, group)) in by_target.iter().enumerate() {
            let spec = &self.targets[*target];
            let stage = format!("sluice_stage_{i}");
            *applied.target(target) += apply(&mut tx, s, target, spec, group, &stage, self.same_event)?;
        }
        let statement = tx.prepare(&sql::dead_letter(s)).map_err(classify)?;
        for d in &batch.dead_letters {
            tx.execute(
                &statement,
                &[&self.pipeline, &d.origin, &d.table, &d.reason, &d.raw, &(d.raw.len() as i32)],
            )
            .map_err(classify)?;
            applied.dead_lettered += 1;
        }
        let statement = tx.prepare(&sql::checkpoint(s)).map_err(classify)?;
        let mut checkpoints: Vec<&Checkpoint> = batch.checkpoints.iter().collect();
        checkpoints.sort_unstable_by(|a, b| a.partition.cmp(&b.partition));
        for c in checkpoints {
            let token = c.lease.unwrap_or(self.epoch);
            tx.execute(&statement, &[&self.pipeline, &c.partition, &c.position, &token]).map_err(classify)?;
        }
        fail::fail_point!("sink::before_commit", |_| std::process::abort());
        tx.commit().map_err(classify)?;
        fail::fail_point!("sink::after_commit", |_| std::process::abort());
        Ok(applied)
    }
}

/// Checks that no newer lease counter claimed `partition`, and records
/// `lease` as the newest, within the caller's transaction.
fn hold_lease(
    tx: &mut Transaction,
    s: &str,
    pipeline: &str,
    partition: &str,
    lease: i64,
) -> Result<(), Failure> {
    tx.execute(&sql::lease_row(s), &[&pipeline, &partition, &lease]).map_err(classify)?;
    let theirs: i64 = tx.query_one(&sql::lease_fence(s), &[&pipeline, &partition]).map_err(classify)?.get(0);
    if theirs > lease {
        let lost = LeaseLost { partition: partition.to_owned(), ours: lease, theirs };
        return Err(Failure::Stop(lost.into()));
    }
    if theirs < lease {
        tx.execute(&sql::raise_lease(s), &[&pipeline, &partition, &lease]).map_err(classify)?;
    }
    Ok(())
}

/// Claims partitions for a coordinated worker, on a connection of its own.
pub struct PostgresClaims {
    sink: PostgresSink,
}

impl PostgresClaims {
    pub fn open(config: &Config, pipeline: &str) -> Result<Self> {
        Ok(PostgresClaims { sink: PostgresSink::unconnected(config, pipeline, Fencing::Leases) })
    }
}

impl Claims for PostgresClaims {
    fn claim(&mut self, partition: &str, lease: i64) -> Result<Option<Checkpoint>, SinkError> {
        let s = self.sink.schema.clone();
        let pipeline = self.sink.pipeline.clone();
        let position: Option<String> = self.sink.retrying(&format!("claiming {partition}"), |sink| {
            let mut tx = sink.client()?.transaction().map_err(classify)?;
            hold_lease(&mut tx, &s, &pipeline, partition, lease)?;
            let row = tx.query_opt(&sql::position(&s), &[&pipeline, &partition]).map_err(classify)?;
            tx.commit().map_err(classify)?;
            Ok(row.map(|r| r.get(0)))
        })?;
        Ok(position.map(|position| Checkpoint {
            partition: partition.to_owned(),
            position,
            lease: Some(lease),
        }))
    }
}

/// Stages one target's rows with COPY and applies them.
fn apply(
    tx: &mut Transaction,
    s: &str,
    target: &str,
    spec: &TargetTable,
    rows: &[&Row],
    stage: &str,
    same_event: SameEvent,
) -> Result<Rows, Failure> {
    let t = quote(target);
    let columns = columns::sql_names(&spec.extras);
    tx.batch_execute(&sql::create_stage(s, &t, stage)).map_err(classify)?;
    let mut data = Vec::with_capacity(rows.len() * 2048);
    for row in rows {
        copy_row(&mut data, row, &spec.extras);
    }
    let mut writer = tx.copy_in(&sql::copy_stage(stage, &columns)).map_err(classify)?;
    // A write error here means the connection broke mid-COPY.
    writer.write_all(&data).map_err(|e| Failure::Retry(anyhow::Error::new(e).context("sending rows")))?;
    writer.finish().map_err(classify)?;

    let staged = rows.len() as u64;
    let hard = spec.deletes == DeleteMode::Hard;
    if hard {
        tx.execute(&sql::drop_older_than_tombstones(s, stage), &[&target]).map_err(classify)?;
    }
    let counts =
        tx.query_one(&sql::upsert(s, &t, stage, &columns, hard, same_event), &[]).map_err(classify)?;
    let (upserted, mut deleted) = (counts.get::<_, i64>(0) as u64, counts.get::<_, i64>(1) as u64);
    if hard {
        tx.execute(&sql::delete_rows(s, &t, stage, same_event), &[]).map_err(classify)?;
        deleted = tx
            .query_one(&sql::tombstone(s, &t, stage, same_event), &[&target])
            .map_err(classify)?
            .get::<_, i64>(0) as u64;
        tx.execute(&sql::clear_tombstones(s, stage), &[&target]).map_err(classify)?;
    }
    Ok(Rows { upserted, deleted, stale: staged - upserted - deleted })
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped.
fn copy_row(out: &mut Vec<u8>, row: &Row, extras: &[String]) {
    for (i, cell) in columns::cells(row, extras).enumerate() {
        let number;
        let field = match cell {
            Cell::Null => None,
            Cell::Text(t) | Cell::Json(t) => Some(t),
            Cell::Bool(b) => Some(if b { "t" } else { "f" }),
            Cell::Int(n) => {
                number = n.to_string();
                Some(number.as_str())
            }
            Cell::Raw(raw) => raw_text(raw),
        };
        if i > 0 {
            out.push(b'\t');
        }
        match field {
            None => out.extend_from_slice(b"\\N"),
            Some(text) => {
                for &b in text.as_bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

/// Connection losses, server restarts, serialization conflicts and
/// deadlocks are worth a retry; anything else is a real error.
fn classify(e: postgres::Error) -> Failure {
    let retry = e.is_closed()
        || match e.code() {
            None => e.as_db_error().is_none(),
            Some(code) => {
                code.code().starts_with("08")
                    || [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::TOO_MANY_CONNECTIONS,
                    ]
                    .contains(code)
            }
        };
    let e = anyhow::Error::new(e);
    if retry { Failure::Retry(e) } else { Failure::Stop(e) }
}

/// Connects; a server that is down or starting is worth waiting for, a bad
/// URL or a refused login is not.
fn connect(config: &Config) -> Result<Client, Failure> {
    let url = config.url.reveal().map_err(|e| Failure::Stop(e.into()))?;
    let shown = redact_url(&url);
    let parsed: postgres::Config =
        url.parse().with_context(|| format!("reading the PostgreSQL URL {shown}")).map_err(Failure::Stop)?;
    let tls = tls(config.ca_file.as_deref()).map_err(Failure::Stop)?;
    parsed.connect(tls).map_err(|e| match classify(e) {
        Failure::Retry(e) => Failure::Retry(e.context(format!("connecting to {shown}"))),
        Failure::Stop(e) => Failure::Stop(e.context(format!("connecting to {shown}"))),
    })
}

/// TLS with the system's trusted roots plus `ca_file`; used when the URL's
/// `sslmode` asks for it (`prefer`, the default, falls back to plain text).
fn tls(ca_file: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in
            CertificateDer::pem_file_iter(path).with_context(|| format!("reading {}", path.display()))?
        {
            roots.add(cert.with_context(|| format!("reading {}", path.display()))?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl Sink for PostgresSink {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError> {
        let s = self.schema.clone();
        let pipeline = self.pipeline.clone();
        Ok(self.retrying("reading checkpoints", |sink| {
            let client = sink.client()?;
            let rows = client
                .query(
                    &format!("SELECT stream, position FROM {s}._sluice_checkpoints WHERE pipeline = $1"),
                    &[&pipeline],
                )
                .map_err(classify)?;
            Ok(rows
                .iter()
                .map(|r| Checkpoint { partition: r.get(0), position: r.get(1), lease: None })
                .collect())
        })?)
    }

    fn write(&mut self, batch: &SinkBatch) -> Result<Applied, SinkError> {
        Ok(self.retrying(&format!("writing batch {}", batch.number), |sink| {
            sink.add_columns(&batch.rows)?;
            sink.write_once(batch)
        })?)
    }
}

/// `sluice status` on PostgreSQL: every query in one read-only transaction,
/// and tables that do not exist yet read as empty.
pub struct Inspect {
    client: Client,
    schema: String,
}

impl Inspect {
    pub fn open(config: &Config) -> Result<Self> {
        let client = connect(config).map_err(Failure::into_error)?;
        Ok(Inspect { client, schema: config.schema.clone() })
    }
}

impl Inspector for Inspect {
    fn status(&mut self, asked: &Asked) -> Result<Status> {
        let Asked { pipeline, targets, sample_rows } = *asked;
        let schema = self.schema.clone();
        let s = quote(&schema);
        let mut tx = self.client.build_transaction().read_only(true).start()?;
        let mut exists = |table: &str| -> Result<bool> {
            let row = tx.query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                &[&schema, &table],
            )?;
            Ok(row.get(0))
        };
        let (checkpoints, dead_letters, tombstones) =
            (exists("_sluice_checkpoints")?, exists("_sluice_dead_letters")?, exists("_sluice_tombstones")?);
        let mut present = Vec::new();
        for (name, _) in targets {
            if exists(name)? {
                present.push(name);
            }
        }
        let mut status = Status::default();
        if checkpoints {
            for r in tx.query(
                &format!(
                    "SELECT stream, position, committed_at::text FROM {s}._sluice_checkpoints \
                     WHERE pipeline = $1 ORDER BY stream"
                ),
                &[&pipeline],
            )? {
                status.checkpoints.push((r.get(0), r.get(1), r.get(2)));
            }
        }
        for name in present {
            let t = quote(name);
            let counts = tx.query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE NOT is_deleted), count(*) FILTER (WHERE is_deleted) FROM {s}.{t}"
                ),
                &[],
            )?;
            let tombstones = match tombstones {
                true => tx
                    .query_one(
                        &format!("SELECT count(*) FROM {s}._sluice_tombstones WHERE target = $1"),
                        &[name],
                    )?
                    .get::<_, i64>(0) as u64,
                false => 0,
            };
            let sample = tx
                .query(
                    &format!(
                        "SELECT keys, is_deleted, new_image::text FROM {s}.{t} \
                         ORDER BY change_micros DESC, keys LIMIT $1"
                    ),
                    &[&(sample_rows as i64)],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            status.tables.push(TableStatus {
                name: name.clone(),
                live: counts.get::<_, i64>(0) as u64,
                deleted: counts.get::<_, i64>(1) as u64,
                tombstones,
                sample,
            });
        }
        if dead_letters {
            status.dead_letters = tx
                .query_one(
                    &format!("SELECT count(*) FROM {s}._sluice_dead_letters WHERE pipeline = $1"),
                    &[&pipeline],
                )?
                .get::<_, i64>(0) as u64;
            for r in tx.query(
                &format!(
                    "SELECT origin, reason FROM {s}._sluice_dead_letters WHERE pipeline = $1 \
                     ORDER BY failed_at DESC, origin LIMIT 5"
                ),
                &[&pipeline],
            )? {
                status.recent_dead_letters.push((r.get(0), r.get(1)));
            }
        }
        tx.rollback()?;
        Ok(status)
    }
}

/// What PostgreSQL would refuse: jsonb cannot hold the NUL character
/// (`\u0000`), nor text a NUL.
pub(super) fn refuses(row: &Row) -> Option<String> {
    nul_in_document(row).or_else(|| nul_in_text(row))
}
