//! The embedded SQLite sink: the whole pipeline on a laptop, no cloud at all.
//!
//! Target tables have the seed's columns plus what ordering needs
//! (`change_micros`, `change_seq`, `source_position`, `is_ttl_delete`).
//! sluice's own state lives beside them in `_sluice_*` tables.
//! The ordering guard is SQL, so it holds whatever order rows arrive in:
//! an upsert's `DO UPDATE ... WHERE` compares orders as row values.

mod config;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{
    CachedStatement, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    Applied, Asked, Claims, Fenced, Fencing, Inspector, LeaseLost, SameEvent, Sink, SinkError, Status,
    TableStatus, TargetTable, Writer, missing_columns, raw_text,
};
pub use config::{Config, Section};

use crate::columns::{self, Cell, Kind};
use crate::ident::quote;
use crate::record::{Checkpoint, DeleteMode, Row, SinkBatch, Value};

/// sluice's own tables, created on first use.
const STATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _sluice_writers (
    pipeline TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _sluice_checkpoints (
    pipeline TEXT NOT NULL,
    stream TEXT NOT NULL,
    position TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, stream)
);
CREATE TABLE IF NOT EXISTS _sluice_dead_letters (
    pipeline TEXT NOT NULL,
    origin TEXT NOT NULL,
    table_name TEXT,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    raw_size_bytes INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, origin)
);
CREATE TABLE IF NOT EXISTS _sluice_tombstones (
    target TEXT NOT NULL,
    table_name TEXT NOT NULL,
    keys TEXT NOT NULL,
    change_micros INTEGER NOT NULL,
    change_seq TEXT NOT NULL,
    event_id TEXT NOT NULL,
    source_position TEXT NOT NULL,
    PRIMARY KEY (target, table_name, keys)
);
CREATE TABLE IF NOT EXISTS _sluice_leases (
    pipeline TEXT NOT NULL,
    stream TEXT NOT NULL,
    lease INTEGER NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, stream)
);
";

/// The SQLite type of each kind of standard column.
fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text { .. } => "TEXT NOT NULL",
        Kind::Message | Kind::Document | Kind::Raw => "TEXT",
        Kind::BigInt | Kind::Int => "INTEGER NOT NULL",
        Kind::Flag => "BOOLEAN NOT NULL",
    }
}

/// A cell as an SQLite value, borrowed from the row.
fn sql_value(cell: Cell<'_>) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match cell {
        Cell::Null => ValueRef::Null,
        Cell::Text(t) | Cell::Json(t) => ValueRef::Text(t.as_bytes()),
        Cell::Bool(b) => ValueRef::Integer(i64::from(b)),
        Cell::Int(i) => ValueRef::Integer(i),
        Cell::Raw(raw) => raw_text(raw).map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes())),
    })
}

/// An order as an SQL row value: (micros, sequence length, sequence), so
/// that sequences compare as numbers. `a >= b` then reads "a is at least as new".
fn order(micros: &str, seq: &str) -> String {
    format!("({micros}, length({seq}), {seq})")
}

/// The order stored in table (or alias) `t`.
fn order_of(t: &str) -> String {
    order(&format!("{t}.change_micros"), &format!("{t}.change_seq"))
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

pub struct SqliteSink {
    conn: Connection,
    path: PathBuf,
    pipeline: String,
    /// The writer epoch this run claimed; 0 when fenced by leases.
    epoch: i64,
    fencing: Fencing,
    targets: HashMap<String, TargetTable>,
    /// Each target's upsert statement, which names its extra columns.
    upserts: HashMap<String, String>,
    same_event: SameEvent,
}

impl SqliteSink {
    /// Opens (creating if missing) the database, its tables, and the
    /// pipeline's writer epoch.
    pub fn open(config: &Config, writer: &Writer) -> Result<Self> {
        let mut sink = Self::connect(&config.path)?;
        sink.same_event = writer.same_event;
        for (name, deletes) in writer.targets {
            sink.create_target(name, *deletes)
                .with_context(|| format!("creating table {name} in {}", sink.path.display()))?;
        }
        sink.pipeline = writer.pipeline.to_owned();
        sink.fencing = writer.fencing;
        if writer.fencing == Fencing::Epoch {
            sink.claim_epoch()?;
        }
        Ok(sink)
    }

    fn connect(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn =
            Connection::open(path).with_context(|| format!("opening SQLite database {}", path.display()))?;
        // WAL with synchronous=NORMAL survives a process crash with every
        // commit; a power loss may drop the last commits, rows and checkpoint
        // together, which a rerun replays.
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "normal")?;
        // Checkpoint (and fsync) every 64 MiB of WAL (16,384 pages; SQLite's
        // default is 4 MiB): a page changed by several commits is then copied
        // into the database once. Checkpoints were a quarter of the sink's
        // time at 16 MiB; 64 MiB made a run 26% faster (256 MiB: 40%, for
        // four times the disk).
        conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
        // Upserts touch pages all over the primary-key index: keep 64 MiB of
        // them in SQLite's cache, and read the rest through the OS's page
        // cache rather than a memory map, whose pages would count as this
        // process's memory and grow with the database.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "mmap_size", 0)?;
        // Each upsert keeps a statement journal; in memory, not in /var/tmp.
        conn.pragma_update(None, "temp_store", "memory")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(STATE_SCHEMA)?;
        Ok(SqliteSink {
            conn,
            path: path.into(),
            pipeline: String::new(),
            epoch: 0,
            fencing: Fencing::default(),
            targets: HashMap::new(),
            upserts: HashMap::new(),
            same_event: SameEvent::default(),
        })
    }

    fn create_target(&mut self, name: &str, deletes: DeleteMode) -> Result<()> {
        let columns: Vec<String> =
            columns::STANDARD.iter().map(|c| format!("{} {}", c.name, column_type(c.kind))).collect();
        self.conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (table_name, keys))",
            quote(name),
            columns.join(", ")
        ))?;
        let mut extras = Vec::new();
        let mut stmt = self.conn.prepare(&format!("PRAGMA table_info({})", quote(name)))?;
        for column in stmt.query_map([], |r| r.get::<_, String>(1))? {
            let column = column?;
            if !columns::is_standard(&column) {
                extras.push(column);
            }
        }
        let upsert = upsert_sql(name, deletes, &extras, self.same_event);
        self.upserts.insert(name.to_owned(), upsert);
        self.targets.insert(name.to_owned(), TargetTable { deletes, extras });
        Ok(())
    }

    /// Adds the extra columns this batch brings, typed by their first non-null value.
    fn add_columns(&mut self, rows: &[Row]) -> Result<()> {
        for (target, column, value) in missing_columns(rows, &self.targets) {
            let ty = match value {
                Value::Bool(_) => "BOOLEAN",
                Value::Integer(_) => "INTEGER",
                _ => "TEXT",
            };
            self.conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {ty}",
                quote(target),
                quote(column)
            ))?;
            let table = self.targets.get_mut(target).expect("targets are prepared");
            table.extras.push(column.to_owned());
            self.upserts
                .insert(target.to_owned(), upsert_sql(target, table.deletes, &table.extras, self.same_event));
        }
        Ok(())
    }

    fn claim_epoch(&mut self) -> Result<()> {
        self.epoch = self.conn.query_row(
            &format!(
                "INSERT INTO _sluice_writers (pipeline, epoch, started_at) VALUES (?1, 1, {NOW})
                 ON CONFLICT (pipeline) DO UPDATE SET epoch = epoch + 1, started_at = excluded.started_at
                 RETURNING epoch"
            ),
            [&self.pipeline],
            |r| r.get(0),
        )?;
        Ok(())
    }
}

fn upsert_sql(table: &str, deletes: DeleteMode, extras: &[String], same_event: SameEvent) -> String {
    let t = quote(table);
    let names = columns::sql_names(extras);
    let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = names[2..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let param = |column: &str| format!("?{}", columns::position(column) + 1);
    // In hard mode a newer tombstone keeps the item deleted.
    let guard = match deletes {
        DeleteMode::Soft => "true".to_owned(),
        DeleteMode::Hard => format!(
            "NOT EXISTS (SELECT 1 FROM _sluice_tombstones AS s WHERE s.target = ?{} \
             AND s.table_name = {} AND s.keys = {} AND {} > {})",
            names.len() + 1,
            param("table_name"),
            param("keys"),
            order_of("s"),
            order(&param("change_micros"), &param("change_seq"))
        ),
    };
    format!(
        "INSERT INTO {t} ({}) SELECT {} WHERE {guard}
         ON CONFLICT (table_name, keys) DO UPDATE SET {}
         WHERE {} >= {} AND NOT {}",
        names.join(", "),
        params.join(", "),
        updates.join(", "),
        order_of("excluded"),
        order_of(&t),
        same_event.held("excluded.event_id", &format!("{t}.event_id"))
    )
}

impl Sink for SqliteSink {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError> {
        Ok(self.read_checkpoints()?)
    }

    fn write(&mut self, batch: &SinkBatch) -> Result<Applied, SinkError> {
        Ok(self.commit(batch)?)
    }
}

impl SqliteSink {
    fn read_checkpoints(&mut self) -> Result<Vec<Checkpoint>> {
        let mut stmt =
            self.conn.prepare("SELECT stream, position FROM _sluice_checkpoints WHERE pipeline = ?1")?;
        let rows = stmt.query_map([&self.pipeline], |r| {
            Ok(Checkpoint { partition: r.get(0)?, position: r.get(1)?, lease: None })
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    fn commit(&mut self, batch: &SinkBatch) -> Result<Applied> {
        self.add_columns(&batch.rows)?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match self.fencing {
            Fencing::Epoch => {
                let epoch: i64 = tx.query_row(
                    "SELECT epoch FROM _sluice_writers WHERE pipeline = ?1",
                    [&self.pipeline],
                    |r| r.get(0),
                )?;
                if epoch != self.epoch {
                    let fenced = Fenced { pipeline: self.pipeline.clone(), ours: self.epoch, theirs: epoch };
                    return Err(fenced.into());
                }
            }
            Fencing::Leases => {
                for c in &batch.checkpoints {
                    if let Some(lease) = c.lease {
                        hold_lease(&tx, &self.pipeline, &c.partition, lease)?;
                    }
                }
            }
        }
        let mut applied = Applied::default();
        // Each target's upsert, looked up in the statement cache once a batch.
        let mut upserts: HashMap<&str, CachedStatement> = HashMap::new();
        for row in &batch.rows {
            let target = &self.targets[&*row.target];
            let done = match (row.change.operation.is_delete(), target.deletes) {
                (true, DeleteMode::Hard) => hard_delete(&tx, row, self.same_event)?,
                _ => {
                    let statement = match upserts.entry(&row.target) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(tx.prepare_cached(&self.upserts[&*row.target])?),
                    };
                    upsert(&tx, statement, target, row)?
                }
            };
            let counts = applied.target(&row.target);
            match (done, row.change.operation.is_delete()) {
                (false, _) => counts.stale += 1,
                (true, false) => counts.upserted += 1,
                (true, true) => counts.deleted += 1,
            }
        }
        drop(upserts);
        let mut dead = tx.prepare_cached(&format!(
            "INSERT INTO _sluice_dead_letters (pipeline, origin, table_name, reason, raw, raw_size_bytes, failed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
             ON CONFLICT (pipeline, origin) DO UPDATE SET table_name = excluded.table_name,
                reason = excluded.reason, raw = excluded.raw, raw_size_bytes = excluded.raw_size_bytes,
                failed_at = excluded.failed_at"
        ))?;
        for d in &batch.dead_letters {
            dead.execute(params![self.pipeline, d.origin, d.table, d.reason, d.raw, d.raw.len() as i64])?;
            applied.dead_lettered += 1;
        }
        drop(dead);
        let mut checkpoint = tx.prepare_cached(&format!(
            "INSERT INTO _sluice_checkpoints (pipeline, stream, position, epoch, committed_at)
             VALUES (?1, ?2, ?3, ?4, {NOW})
             ON CONFLICT (pipeline, stream) DO UPDATE SET position = excluded.position,
                epoch = excluded.epoch, committed_at = excluded.committed_at"
        ))?;
        for c in &batch.checkpoints {
            checkpoint.execute(params![
                self.pipeline,
                c.partition,
                c.position,
                c.lease.unwrap_or(self.epoch)
            ])?;
        }
        drop(checkpoint);
        fail::fail_point!("sink::before_commit", |_| std::process::abort());
        tx.commit().context("committing the batch")?;
        fail::fail_point!("sink::after_commit", |_| std::process::abort());
        Ok(applied)
    }
}

/// Checks that no newer lease counter claimed `partition`, and records
/// `lease` as the newest, within the caller's transaction.
fn hold_lease(tx: &Transaction, pipeline: &str, partition: &str, lease: i64) -> Result<()> {
    let stored: Option<i64> = tx
        .query_row(
            "SELECT lease FROM _sluice_leases WHERE pipeline = ?1 AND stream = ?2",
            [pipeline, partition],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(theirs) = stored.filter(|theirs| *theirs > lease) {
        return Err(LeaseLost { partition: partition.to_owned(), ours: lease, theirs }.into());
    }
    if stored != Some(lease) {
        tx.execute(
            &format!(
                "INSERT INTO _sluice_leases (pipeline, stream, lease, claimed_at) VALUES (?1, ?2, ?3, {NOW})
                 ON CONFLICT (pipeline, stream) DO UPDATE SET lease = excluded.lease, claimed_at = excluded.claimed_at"
            ),
            params![pipeline, partition, lease],
        )?;
    }
    Ok(())
}

/// Claims partitions for a coordinated worker, on a connection of its own.
pub struct SqliteClaims {
    sink: SqliteSink,
}

impl SqliteClaims {
    pub fn open(config: &Config, pipeline: &str) -> Result<Self> {
        let mut sink = SqliteSink::connect(&config.path)?;
        sink.pipeline = pipeline.to_owned();
        Ok(SqliteClaims { sink })
    }
}

impl Claims for SqliteClaims {
    fn claim(&mut self, partition: &str, lease: i64) -> Result<Option<Checkpoint>, SinkError> {
        let pipeline = &self.sink.pipeline;
        let tx = self
            .sink
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(anyhow::Error::from)?;
        hold_lease(&tx, pipeline, partition, lease)?;
        let position: Option<String> = tx
            .query_row(
                "SELECT position FROM _sluice_checkpoints WHERE pipeline = ?1 AND stream = ?2",
                [pipeline, partition],
                |r| r.get(0),
            )
            .optional()
            .map_err(anyhow::Error::from)?;
        tx.commit().context("committing the claim").map_err(SinkError::from)?;
        Ok(position.map(|position| Checkpoint {
            partition: partition.to_owned(),
            position,
            lease: Some(lease),
        }))
    }
}

/// `sluice status` on a SQLite file: opened read-only, and not at all if
/// the file does not exist (a pipeline that never ran leaves no file behind).
pub struct Inspect {
    conn: Option<Connection>,
}

impl Inspect {
    pub fn open(config: &Config) -> Result<Self> {
        let path = &config.path;
        if !path.exists() {
            return Ok(Inspect { conn: None });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening SQLite database {} read-only", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Inspect { conn: Some(conn) })
    }
}

impl Inspector for Inspect {
    fn status(&mut self, asked: &Asked) -> Result<Status> {
        let Asked { pipeline, targets, sample_rows } = *asked;
        let mut status = Status::default();
        let Some(conn) = &self.conn else { return Ok(status) };
        let exists = |name: &str| -> Result<bool> {
            let n: i64 = conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        };
        let count = |sql: &str, params: &[&dyn ToSql]| -> Result<u64> {
            Ok(conn.query_row(sql, params, |r| r.get::<_, i64>(0))? as u64)
        };
        if exists("_sluice_checkpoints")? {
            let mut stmt = conn.prepare(
                "SELECT stream, position, committed_at FROM _sluice_checkpoints WHERE pipeline = ?1 ORDER BY stream",
            )?;
            status.checkpoints = stmt
                .query_map([pipeline], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
        }
        let tombstones = exists("_sluice_tombstones")?;
        for (name, _) in targets {
            if !exists(name)? {
                continue;
            }
            let t = quote(name);
            let mut table = TableStatus {
                live: count(&format!("SELECT count(*) FROM {t} WHERE NOT is_deleted"), &[])?,
                deleted: count(&format!("SELECT count(*) FROM {t} WHERE is_deleted"), &[])?,
                tombstones: if tombstones {
                    count("SELECT count(*) FROM _sluice_tombstones WHERE target = ?1", &[name])?
                } else {
                    0
                },
                name: name.clone(),
                sample: Vec::new(),
            };
            let mut stmt = conn.prepare(&format!(
                "SELECT keys, is_deleted, new_image FROM {t} ORDER BY change_micros DESC, keys LIMIT ?1"
            ))?;
            table.sample = stmt
                .query_map([sample_rows as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            status.tables.push(table);
        }
        status.tables.sort_by(|a, b| a.name.cmp(&b.name));
        if exists("_sluice_dead_letters")? {
            status.dead_letters =
                count("SELECT count(*) FROM _sluice_dead_letters WHERE pipeline = ?1", &[&pipeline])?;
            let mut stmt = conn.prepare(
                "SELECT origin, reason FROM _sluice_dead_letters WHERE pipeline = ?1 \
                 ORDER BY failed_at DESC, origin LIMIT 5",
            )?;
            status.recent_dead_letters =
                stmt.query_map([pipeline], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        }
        Ok(status)
    }
}

/// Inserts or replaces the row if the change is at least as new; soft
/// deletes come here too. Returns whether it was applied.
fn upsert(
    tx: &Transaction,
    statement: &mut CachedStatement,
    target: &TargetTable,
    row: &Row,
) -> Result<bool> {
    let c = &row.change;
    let mut values: Vec<ToSqlOutput> = columns::cells(row, &target.extras).map(sql_value).collect();
    let target_name: &str = &row.target;
    if target.deletes == DeleteMode::Hard {
        values.push(ToSqlOutput::Borrowed(ValueRef::Text(target_name.as_bytes())));
    }
    let changed = statement.execute(rusqlite::params_from_iter(values))?;
    if changed > 0 && target.deletes == DeleteMode::Hard {
        tx.prepare_cached(
            "DELETE FROM _sluice_tombstones WHERE target = ?1 AND table_name = ?2 AND keys = ?3",
        )?
        .execute(params![target_name, c.table, c.key])?;
    }
    Ok(changed > 0)
}

/// Removes the row if the delete is at least as new, and records a tombstone
/// unless a newer row stays. Returns whether the delete was applied.
fn hard_delete(tx: &Transaction, row: &Row, same_event: SameEvent) -> Result<bool> {
    let c = &row.change;
    let t = quote(&row.target);
    let micros = c.order.micros as i64;
    tx.prepare_cached(&format!(
        "DELETE FROM {t} WHERE table_name = ?1 AND keys = ?2 AND {} >= {} AND NOT {}",
        order("?3", "?4"),
        order("change_micros", "change_seq"),
        same_event.held("?5", "event_id")
    ))?
    .execute(params![c.table, c.key, micros, c.order.tiebreak, c.event_id])?;
    let tombstoned = tx
        .prepare_cached(&format!(
            "INSERT INTO _sluice_tombstones (target, table_name, keys, change_micros, change_seq, event_id, source_position)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE table_name = ?2 AND keys = ?3)
             ON CONFLICT (target, table_name, keys) DO UPDATE SET change_micros = excluded.change_micros,
                change_seq = excluded.change_seq, event_id = excluded.event_id,
                source_position = excluded.source_position
             WHERE {} >= {} AND NOT {}",
            order_of("excluded"),
            order_of("_sluice_tombstones"),
            same_event.held("excluded.event_id", "_sluice_tombstones.event_id")
        ))?
        .execute(params![&*row.target, c.table, c.key, micros, c.order.tiebreak, c.event_id, row.origin])?;
    Ok(tombstoned > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Change, Operation, Order};

    fn row(key: &str, micros: u64, operation: Operation) -> Row {
        Row {
            target: "t".into(),
            change: Change {
                table: "orders".into(),
                key: key.into(),
                operation,
                order: Order { micros, tiebreak: "1".into() },
                event_name: "MODIFY".into(),
                event_id: format!("e{micros}"),
                new_image: Some(format!("{{\"v\":{micros}}}")),
                old_image: None,
                error: None,
                extra: Vec::new(),
            },
            raw: crate::record::Raw::Kept(b"{}".to_vec()),
            origin: "test:1".into(),
        }
    }

    fn writer(targets: &[(String, DeleteMode)]) -> Writer<'_> {
        Writer { pipeline: "p", targets, same_event: SameEvent::Keeps, fencing: Fencing::Epoch }
    }

    fn batch(number: u64, rows: Vec<Row>) -> SinkBatch {
        SinkBatch { number, rows, ..Default::default() }
    }

    #[test]
    fn a_newer_run_fences_out_the_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let targets = [("t".to_owned(), DeleteMode::Soft)];
        let config = Config { path };
        let mut old = SqliteSink::open(&config, &writer(&targets)).unwrap();
        old.write(&batch(1, vec![row("{\"k\":1}", 1, Operation::Upsert)])).unwrap();

        let mut new = SqliteSink::open(&config, &writer(&targets)).unwrap();
        let err = old.write(&batch(2, vec![row("{\"k\":1}", 2, Operation::Upsert)])).unwrap_err();
        let SinkError::Fenced(fenced) = err else { panic!("not a fence: {err:#}") };
        assert_eq!((fenced.ours, fenced.theirs), (1, 2));
        new.write(&batch(1, vec![row("{\"k\":1}", 3, Operation::Upsert)])).unwrap();
    }

    /// Workers of a coordinated pipeline share the sink; each shard is
    /// fenced by the lease counter its checkpoint carries.
    #[test]
    fn a_shard_claimed_under_a_newer_lease_refuses_the_older_holder() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { path: dir.path().join("s.db") };
        let targets = [("t".to_owned(), DeleteMode::Soft)];
        let leased = Writer { fencing: Fencing::Leases, ..writer(&targets) };
        let mut old = SqliteSink::open(&config, &leased).unwrap();
        // A second worker opening the sink fences nobody.
        let mut other = SqliteSink::open(&config, &leased).unwrap();
        let at = |position: &str, lease| Checkpoint {
            partition: "s/shard-0".into(),
            position: position.into(),
            lease,
        };
        let mut first = batch(1, vec![row("{\"k\":1}", 1, Operation::Upsert)]);
        first.checkpoints = vec![at("1", Some(3))];
        old.write(&first).unwrap();

        let mut claims = SqliteClaims::open(&config, "p").unwrap();
        assert_eq!(claims.claim("s/shard-0", 5).unwrap(), Some(at("1", Some(5))));
        assert_eq!(claims.claim("s/shard-1", 5).unwrap(), None, "a shard never committed");
        let mut late = batch(2, vec![row("{\"k\":1}", 2, Operation::Upsert)]);
        late.checkpoints = vec![at("2", Some(3))];
        let err = old.write(&late).unwrap_err();
        let SinkError::LeaseLost(lost) = err else { panic!("not a lost lease: {err:#}") };
        assert_eq!((lost.ours, lost.theirs), (3, 5));
        let SinkError::LeaseLost(_) = claims.claim("s/shard-0", 4).unwrap_err() else {
            panic!("an older claim")
        };

        // Nothing of the refused batch is committed; the new holder goes on.
        assert_eq!(other.checkpoints().unwrap(), [Checkpoint { lease: None, ..at("1", None) }]);
        let mut next = batch(3, vec![row("{\"k\":1}", 4, Operation::Upsert)]);
        next.checkpoints = vec![at("3", Some(5))];
        other.write(&next).unwrap();
    }

    #[test]
    fn soft_deletes_keep_the_row_and_clear_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { path: dir.path().join("s.db") };
        let mut sink = SqliteSink::open(&config, &writer(&[("t".to_owned(), DeleteMode::Soft)])).unwrap();
        let applied = sink.write(&batch(1, vec![row("{\"k\":1}", 5, Operation::Upsert)])).unwrap();
        assert_eq!(applied.rows().upserted, 1);
        let applied = sink.write(&batch(2, vec![row("{\"k\":1}", 7, Operation::TtlDelete)])).unwrap();
        assert_eq!(applied.rows().deleted, 1);
        let applied = sink.write(&batch(3, vec![row("{\"k\":1}", 6, Operation::Upsert)])).unwrap();
        assert_eq!((applied.rows().upserted, applied.rows().stale), (0, 1));
        let (deleted, ttl, image, event): (bool, bool, Option<String>, String) = sink
            .conn
            .query_row("SELECT is_deleted, is_ttl_delete, new_image, event_id FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!((deleted, ttl, image, event.as_str()), (true, true, None, "e7"));
    }

    #[test]
    fn a_record_that_is_not_text_keeps_its_size_and_a_null_raw_payload() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { path: dir.path().join("s.db") };
        let mut sink = SqliteSink::open(&config, &writer(&[("t".to_owned(), DeleteMode::Soft)])).unwrap();
        let mut binary = row("{\"k\":1}", 5, Operation::Upsert);
        binary.raw = crate::record::Raw::Kept(vec![0xff, 0x00, 0xfe]);
        assert_eq!(sink.write(&batch(1, vec![binary])).unwrap().rows().upserted, 1);
        let (raw, size): (Option<String>, i64) = sink
            .conn
            .query_row("SELECT raw_payload, raw_payload_size_bytes FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((raw, size), (None, 3));
    }
}
