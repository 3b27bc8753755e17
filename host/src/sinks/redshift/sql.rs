//! Every statement the Redshift sink sends, in one place. The tests below
//! parse each with sqlparser's Redshift dialect, and `golden/` holds the
//! exact SQL of sample batches for reviewers (`SLUICE_BLESS=1 cargo test`
//! rewrites them).
//!
//! Redshift has no `ON CONFLICT` and its MERGE allows no condition on
//! `WHEN MATCHED`, so a batch is applied as: stage the rows, delete staged
//! rows that are older than what is stored, then delete and re-insert.
//! Values travel as literals, because BatchExecuteStatement takes no
//! parameters; [`literal`] escapes them.

use crate::columns::{self, Kind as Column};
use crate::ident::quote;
use crate::record::{Checkpoint, DeadLetter, Row, Value};
use crate::sinks::{SameEvent, raw_text};

/// The Data API's "maximum query statement size is 100 KB", read the strict
/// way under both readings: for all the SQL of one request together, and
/// 1 KB as 1,000 bytes.
pub const MAX_REQUEST_BYTES: usize = 100_000;
/// BatchExecuteStatement runs at most 40 statements, in one transaction.
pub const MAX_BATCH_STATEMENTS: usize = 40;
/// The widest VARCHAR Redshift has, in bytes.
pub const MAX_VARCHAR: usize = 65_535;
/// The largest SUPER value, in bytes of compact JSON ("16 MB", read as
/// 16,000,000 bytes).
pub const MAX_SUPER: usize = 16_000_000;
/// VARBYTE(16777216), Redshift's widest: raw dead letters, and documents
/// assembled from pieces.
const MAX_VARBYTE: usize = 16_777_216;
/// Hex digits in one FROM_HEX literal: a string literal is a VARCHAR, at
/// most 65,535 bytes.
const HEX_PER_LITERAL: usize = 65_534;

/// A string literal: quotes doubled and, because Redshift reads backslash
/// escapes in ordinary literals, backslashes doubled too.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The Redshift type of each kind of standard column: the seed's layout.
pub fn column_type(kind: Column) -> String {
    match kind {
        Column::Text { max_bytes } => format!("VARCHAR({max_bytes}) NOT NULL"),
        Column::Message | Column::Raw => format!("VARCHAR({MAX_VARCHAR})"),
        Column::Document => "SUPER".to_owned(),
        Column::BigInt => "BIGINT NOT NULL".to_owned(),
        Column::Int => "INTEGER NOT NULL".to_owned(),
        Column::Flag => "BOOLEAN NOT NULL".to_owned(),
    }
}

/// The raw record for `raw_payload`, when a VARCHAR(65535) holds it; the
/// column is NULL otherwise (its size stays in `raw_payload_size_bytes`).
pub fn raw_payload(raw: &[u8]) -> Option<&str> {
    raw_text(raw).filter(|r| r.len() <= MAX_VARCHAR)
}

/// The type of an extra column, from its first non-null value.
pub fn extra_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some("BOOLEAN"),
        Value::Integer(_) => Some("BIGINT"),
        Value::Text(_) => Some("VARCHAR(65535)"),
        Value::Json(_) => Some("SUPER"),
    }
}

/// sluice's own tables in schema `s` (quoted), one statement each.
pub fn state_tables(s: &str) -> Vec<String> {
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_writers (pipeline VARCHAR(256) NOT NULL, \
             epoch BIGINT NOT NULL, started_at TIMESTAMP NOT NULL, PRIMARY KEY (pipeline))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_checkpoints (pipeline VARCHAR(256) NOT NULL, \
             stream VARCHAR(1024) NOT NULL, position VARCHAR(65535) NOT NULL, epoch BIGINT NOT NULL, \
             committed_at TIMESTAMP NOT NULL, PRIMARY KEY (pipeline, stream))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_dead_letters (pipeline VARCHAR(256) NOT NULL, \
             origin VARCHAR(1024) NOT NULL, table_name VARCHAR(256), reason VARCHAR(65535) NOT NULL, \
             raw VARBYTE({MAX_VARBYTE}) NOT NULL, raw_size_bytes INTEGER NOT NULL, \
             failed_at TIMESTAMP NOT NULL, PRIMARY KEY (pipeline, origin))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_tombstones (target VARCHAR(256) NOT NULL, \
             table_name VARCHAR(256) NOT NULL, keys VARCHAR(65535) NOT NULL, change_micros BIGINT NOT NULL, \
             change_seq VARCHAR(256) NOT NULL, event_id VARCHAR(256) NOT NULL, \
             source_position VARCHAR(1024) NOT NULL, PRIMARY KEY (target, table_name, keys))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_leases (pipeline VARCHAR(256) NOT NULL, \
             stream VARCHAR(1024) NOT NULL, lease BIGINT NOT NULL, claimed_at TIMESTAMP NOT NULL, \
             PRIMARY KEY (pipeline, stream))"
        ),
    ]
}

pub fn create_target(s: &str, t: &str) -> String {
    let columns: Vec<String> =
        columns::STANDARD.iter().map(|c| format!("{} {}", c.name, column_type(c.kind))).collect();
    format!("CREATE TABLE IF NOT EXISTS {s}.{t} ({}, PRIMARY KEY (table_name, keys))", columns.join(", "))
}

pub fn add_column(s: &str, t: &str, column: &str, ty: &str) -> String {
    format!("ALTER TABLE {s}.{t} ADD COLUMN {} {ty}", quote(column))
}

/// Claims the next writer epoch: create the row if missing, bump it, read it
/// (the third statement's result).
pub fn claim_epoch(s: &str, pipeline: &str) -> Vec<String> {
    let p = literal(pipeline);
    vec![
        format!(
            "INSERT INTO {s}._sluice_writers (pipeline, epoch, started_at) SELECT {p}, 0, GETDATE() \
             WHERE NOT EXISTS (SELECT 1 FROM {s}._sluice_writers WHERE pipeline = {p})"
        ),
        format!(
            "UPDATE {s}._sluice_writers SET epoch = epoch + 1, started_at = GETDATE() WHERE pipeline = {p}"
        ),
        writer_epoch(s, pipeline),
    ]
}

/// The pipeline's current writer epoch.
pub fn writer_epoch(s: &str, pipeline: &str) -> String {
    format!("SELECT epoch FROM {s}._sluice_writers WHERE pipeline = {}", literal(pipeline))
}

/// Fails the whole transaction (division by zero) when a newer run has
/// claimed the pipeline: Redshift cannot abort a transaction from a
/// comparison. It is always a batch's first statement; when that fails, the
/// sink reads the epoch again to tell a fence from any other failure.
pub fn fence(s: &str, pipeline: &str, epoch: i64) -> String {
    format!(
        "SELECT 1 / (CASE WHEN epoch = {epoch} THEN 1 ELSE 0 END) FROM {s}._sluice_writers WHERE pipeline = {}",
        literal(pipeline)
    )
}

/// Fails the whole transaction (division by zero, as [`fence`]) when a
/// newer lease counter than the one a partition's checkpoint carries has
/// claimed the partition. Every claimed partition has its row. The first
/// statement of a coordinated worker's every request.
pub fn lease_fence(s: &str, pipeline: &str, leased: &[(&str, i64)]) -> String {
    let ours: Vec<String> =
        leased.iter().map(|(p, lease)| format!("WHEN {} THEN {lease}", literal(p))).collect();
    let streams: Vec<String> = leased.iter().map(|(p, _)| literal(p)).collect();
    format!(
        "SELECT 1 / (CASE WHEN lease <= (CASE stream {} END) THEN 1 ELSE 0 END) FROM {s}._sluice_leases \
         WHERE pipeline = {} AND stream IN ({})",
        ours.join(" "),
        literal(pipeline),
        streams.join(", ")
    )
}

/// The stored lease counters of `partitions`: (stream, lease) rows.
pub fn leases_of(s: &str, pipeline: &str, partitions: &[&str]) -> String {
    let streams: Vec<String> = partitions.iter().map(|p| literal(p)).collect();
    format!(
        "SELECT stream, lease FROM {s}._sluice_leases WHERE pipeline = {} AND stream IN ({})",
        literal(pipeline),
        streams.join(", ")
    )
}

/// Claims `partition` under `lease` in one transaction: its row made if
/// missing, fenced (the second statement fails if a newer counter claimed
/// it), raised to `lease`, and its checkpoint read (the last statement).
pub fn claim_lease(s: &str, pipeline: &str, partition: &str, lease: i64) -> Vec<String> {
    let (p, stream) = (literal(pipeline), literal(partition));
    vec![
        format!(
            "INSERT INTO {s}._sluice_leases (pipeline, stream, lease, claimed_at) SELECT {p}, {stream}, 0, \
             GETDATE() WHERE NOT EXISTS (SELECT 1 FROM {s}._sluice_leases WHERE pipeline = {p} AND stream = {stream})"
        ),
        lease_fence(s, pipeline, &[(partition, lease)]),
        format!(
            "UPDATE {s}._sluice_leases SET lease = {lease}, claimed_at = GETDATE() \
             WHERE pipeline = {p} AND stream = {stream}"
        ),
        format!(
            "SELECT stream, position FROM {s}._sluice_checkpoints WHERE pipeline = {p} AND stream = {stream}"
        ),
    ]
}

/// A temporary staging table, gone with the transaction's session.
pub fn create_stage(s: &str, t: &str, stage: &str) -> String {
    format!("CREATE TEMP TABLE {stage} (LIKE {s}.{t})")
}

/// A staging table that outlives one request: a batch too large for one
/// request is staged in it first, then applied.
pub fn create_batch_table(s: &str, like: &str, stage: &str) -> String {
    format!("CREATE TABLE {s}.{stage} (LIKE {s}.{like})")
}

/// Where the pieces of values too large for one statement are assembled.
pub fn create_pieces(s: &str, pieces: &str) -> String {
    format!("CREATE TABLE {s}.{pieces} (n BIGINT NOT NULL, body VARBYTE({MAX_VARBYTE}) NOT NULL)")
}

/// How a staged value's bytes become the column's type again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUPER, from JSON text.
    Json,
    /// VARCHAR, from UTF-8.
    Text,
    /// VARBYTE, as is.
    Bytes,
}

impl Kind {
    fn convert(self, bytes: &str) -> String {
        match self {
            Kind::Json => format!("JSON_PARSE({bytes})"),
            Kind::Text => format!("FROM_VARBYTE({bytes}, 'utf8')"),
            Kind::Bytes => bytes.to_owned(),
        }
    }

    /// A literal of this kind holding `bytes`. A string literal is a
    /// VARCHAR, so JSON longer than one goes through VARBYTE.
    fn literal(self, bytes: &[u8]) -> String {
        match self {
            Kind::Json if bytes.len() <= MAX_VARCHAR => {
                format!("JSON_PARSE({})", literal(std::str::from_utf8(bytes).expect("JSON is UTF-8")))
            }
            Kind::Json => format!("JSON_PARSE({})", hex(bytes)),
            Kind::Text => literal(std::str::from_utf8(bytes).expect("text is UTF-8")),
            Kind::Bytes => hex(bytes),
        }
    }

    /// What a row holds until the value's pieces are in place.
    fn empty(self) -> &'static str {
        match self {
            Kind::Bytes => "FROM_HEX('')",
            Kind::Text => "''",
            Kind::Json => "NULL",
        }
    }
}

/// One value of a staged row: the SQL that writes it, and for a value that
/// may be too large for a statement, its bytes, to be sent in pieces.
pub struct Cell<'a> {
    pub sql: String,
    pub large: Option<(&'a [u8], Kind)>,
}

impl<'a> Cell<'a> {
    fn small(sql: String) -> Self {
        Cell { sql, large: None }
    }

    fn value(bytes: Option<&'a [u8]>, kind: Kind) -> Self {
        match bytes {
            None => Cell::small("NULL".to_owned()),
            Some(b) => Cell { sql: kind.literal(b), large: Some((b, kind)) },
        }
    }

    /// Takes the value out, to be sent in pieces.
    pub fn take(&mut self) -> Option<(&'a [u8], Kind)> {
        let large = self.large.take()?;
        self.sql = large.1.empty().to_owned();
        Some(large)
    }
}

/// A row's cells, one per column of `columns::sql_names(extras)`. The
/// standard columns of bounded text (the key among them) stay in the
/// statement, so a staged row can be found by its key while its large
/// values are sent in pieces.
pub fn cells<'a>(row: &'a Row, extras: &'a [String]) -> Vec<Cell<'a>> {
    let bounded = |i: usize| columns::STANDARD.get(i).is_some_and(|c| matches!(c.kind, Column::Text { .. }));
    columns::cells(row, extras)
        .enumerate()
        .map(|(i, cell)| match cell {
            columns::Cell::Null => Cell::small("NULL".to_owned()),
            columns::Cell::Text(t) if bounded(i) => Cell::small(literal(t)),
            columns::Cell::Text(t) => Cell::value(Some(t.as_bytes()), Kind::Text),
            columns::Cell::Json(j) => Cell::value(Some(j.as_bytes()), Kind::Json),
            columns::Cell::Bool(b) => Cell::small(if b { "TRUE" } else { "FALSE" }.to_owned()),
            columns::Cell::Int(n) => Cell::small(n.to_string()),
            columns::Cell::Raw(raw) => Cell::value(raw_payload(raw).map(str::as_bytes), Kind::Text),
        })
        .collect()
}

/// Cells as a VALUES tuple.
pub fn tuple(cells: &[Cell]) -> String {
    let mut out = String::with_capacity(cells.iter().map(|c| c.sql.len() + 2).sum::<usize>() + 2);
    out.push('(');
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&cell.sql);
    }
    out.push(')');
    out
}

/// Splits tuples into runs that each fit in one INSERT statement of at most
/// `budget` bytes (with `columns`, into a table whose quoted name is at most
/// 256 bytes). A tuple longer than that alone is a run of its own.
pub fn insert_runs(columns: &[String], tuples: &[String], budget: usize) -> Vec<std::ops::Range<usize>> {
    let head = insert_head_bytes(columns);
    let mut runs = Vec::new();
    let (mut start, mut size) = (0, head);
    for (i, t) in tuples.iter().enumerate() {
        if i > start && size + 2 + t.len() > budget {
            runs.push(start..i);
            (start, size) = (i, head);
        }
        size += 2 + t.len();
    }
    if start < tuples.len() {
        runs.push(start..tuples.len());
    }
    runs
}

/// The bytes of an INSERT statement besides its tuples.
pub fn insert_head_bytes(columns: &[String]) -> usize {
    256 + columns.iter().map(|c| c.len() + 2).sum::<usize>() + 40
}

pub fn insert(table: &str, columns: &[String], tuples: &[String]) -> String {
    format!("INSERT INTO {table} ({}) VALUES {}", columns.join(", "), tuples.join(", "))
}

/// `bytes` as VARBYTE: FROM_HEX literals, joined when one literal is not enough.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if bytes.is_empty() {
        return "FROM_HEX('')".to_owned();
    }
    let mut out = String::with_capacity(bytes.len() * 2 + 16);
    for (i, chunk) in bytes.chunks(HEX_PER_LITERAL / 2).enumerate() {
        if i > 0 {
            out.push_str(" || ");
        }
        out.push_str("FROM_HEX('");
        for b in chunk {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 15)] as char);
        }
        out.push_str("')");
    }
    out
}

/// The bytes of one piece of a large value sent per statement: with the
/// statement around it, well under a request's budget.
pub const PIECE_BYTES: usize = 45_000;

/// The first piece of value `n`.
pub fn first_piece(s: &str, pieces: &str, n: usize, bytes: &[u8]) -> String {
    format!("INSERT INTO {s}.{pieces} (n, body) VALUES ({n}, {})", hex(bytes))
}

/// A further piece of value `n`, appended.
pub fn next_piece(s: &str, pieces: &str, n: usize, bytes: &[u8]) -> String {
    format!("UPDATE {s}.{pieces} SET body = body || {} WHERE n = {n}", hex(bytes))
}

/// Moves assembled value `n` into the staged row where `which` holds.
pub fn fill_from_piece(
    s: &str,
    stage: &str,
    column: &str,
    kind: Kind,
    pieces: &str,
    n: usize,
    which: &str,
) -> String {
    let body = kind.convert(&format!("{s}.{pieces}.body"));
    format!(
        "UPDATE {s}.{stage} SET {column} = {body} FROM {s}.{pieces} WHERE {s}.{pieces}.n = {n} AND {which}"
    )
}

/// COPY from gzip JSON lines in S3 (`region`: the bucket's, so that a
/// bucket in another region than the cluster works).
pub fn copy_stage(stage: &str, columns: &[String], uri: &str, iam_role: &str, region: &str) -> String {
    let role =
        if iam_role.eq_ignore_ascii_case("default") { "default".to_owned() } else { literal(iam_role) };
    format!(
        "COPY {stage} ({}) FROM {} IAM_ROLE {role} FORMAT AS JSON 'auto' GZIP REGION {}",
        columns.join(", "),
        literal(uri),
        literal(region)
    )
}

/// "`old` holds a strictly newer order than `new`", without row values
/// (Redshift has none): micros, then the sequence by length, then by text.
fn newer(old: &str, new: &str) -> String {
    format!(
        "({old}.change_micros > {new}.change_micros OR ({old}.change_micros = {new}.change_micros AND \
         (LEN({old}.change_seq) > LEN({new}.change_seq) OR (LEN({old}.change_seq) = LEN({new}.change_seq) \
         AND {old}.change_seq > {new}.change_seq))))"
    )
}

/// "`new` is a change `old` already holds" (the same event id, delivered
/// again): unless replaying, such a change is not applied.
fn same_event(mode: SameEvent, new: &str, old: &str) -> String {
    mode.held(&format!("{new}.event_id"), &format!("{old}.event_id"))
}

/// Drops staged changes older than the stored row, or that it already
/// holds: the ordering guard.
pub fn drop_stale(s: &str, t: &str, stage: &str, mode: SameEvent) -> String {
    format!(
        "DELETE FROM {stage} USING {s}.{t} AS o WHERE {stage}.table_name = o.table_name \
         AND {stage}.keys = o.keys AND ({} OR {})",
        newer("o", stage),
        same_event(mode, stage, "o")
    )
}

/// Hard deletes: drops staged changes older than a tombstone, or that it is.
pub fn drop_older_than_tombstones(s: &str, target: &str, stage: &str, mode: SameEvent) -> String {
    format!(
        "DELETE FROM {stage} USING {s}._sluice_tombstones AS b WHERE b.target = {} \
         AND {stage}.table_name = b.table_name AND {stage}.keys = b.keys AND ({} OR {})",
        literal(target),
        newer("b", stage),
        same_event(mode, stage, "b")
    )
}

/// What remains staged is applied: (deletes, upserts).
pub fn count_applicable(stage: &str) -> String {
    format!(
        "SELECT COUNT(CASE WHEN is_deleted THEN 1 END), COUNT(CASE WHEN NOT is_deleted THEN 1 END) FROM {stage}"
    )
}

/// Replaces the stored rows by the staged ones; in hard mode deletes leave
/// no row.
pub fn replace_rows(s: &str, t: &str, stage: &str, columns: &[String], hard: bool) -> Vec<String> {
    let list = columns.join(", ");
    let only_upserts = if hard { " WHERE NOT is_deleted" } else { "" };
    vec![
        format!(
            "DELETE FROM {s}.{t} USING {stage} WHERE {t}.table_name = {stage}.table_name AND {t}.keys = {stage}.keys"
        ),
        format!("INSERT INTO {s}.{t} ({list}) SELECT {list} FROM {stage}{only_upserts}"),
    ]
}

/// Hard deletes: the staged changes replace the tombstones of their items,
/// and deletes leave new ones.
pub fn replace_tombstones(s: &str, target: &str, stage: &str) -> Vec<String> {
    let target = literal(target);
    vec![
        format!(
            "DELETE FROM {s}._sluice_tombstones USING {stage} WHERE _sluice_tombstones.target = {target} \
             AND _sluice_tombstones.table_name = {stage}.table_name AND _sluice_tombstones.keys = {stage}.keys"
        ),
        format!(
            "INSERT INTO {s}._sluice_tombstones (target, table_name, keys, change_micros, change_seq, event_id, \
             source_position) SELECT {target}, table_name, keys, change_micros, change_seq, event_id, \
             source_position FROM {stage} WHERE is_deleted"
        ),
    ]
}

pub fn drop_stage(stage: &str) -> String {
    format!("DROP TABLE {stage}")
}

/// The dead letters' columns.
pub fn dead_letter_columns() -> Vec<String> {
    ["pipeline", "origin", "table_name", "reason", "raw", "raw_size_bytes", "failed_at"]
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// A dead letter's cells, in `dead_letter_columns` order; its raw bytes are
/// the one value that may be large.
pub fn dead_letter_cells<'a>(pipeline: &str, dead: &'a DeadLetter) -> Vec<Cell<'a>> {
    vec![
        Cell::small(literal(pipeline)),
        Cell::small(literal(&dead.origin)),
        Cell::small(dead.table.as_deref().map_or_else(|| "NULL".to_owned(), literal)),
        Cell::value(Some(dead.reason.as_bytes()), Kind::Text),
        Cell::value(Some(&dead.raw), Kind::Bytes),
        Cell::small(dead.raw.len().to_string()),
        Cell::small("GETDATE()".to_owned()),
    ]
}

/// The checkpoints' columns.
pub fn checkpoint_columns() -> Vec<String> {
    ["pipeline", "stream", "position", "epoch", "committed_at"].iter().map(|c| c.to_string()).collect()
}

/// A checkpoint's row; its `epoch` column holds the lease counter it was
/// read under, if any, else the writer epoch.
pub fn checkpoint_tuple(pipeline: &str, c: &Checkpoint, epoch: i64) -> String {
    format!(
        "({}, {}, {}, {}, GETDATE())",
        literal(pipeline),
        literal(&c.partition),
        literal(&c.position),
        c.lease.unwrap_or(epoch)
    )
}

/// Rows of one of sluice's tables replaced by key: the stored rows with the
/// keys being written go, then the new ones are inserted. Keyed by
/// (pipeline, `key`); `keys` are the new rows' values of `key`.
pub fn replace_keyed(s: &str, table: &str, pipeline: &str, key: &str, keys: &[&str]) -> String {
    let list: Vec<String> = keys.iter().map(|k| literal(k)).collect();
    format!(
        "DELETE FROM {s}.{table} WHERE pipeline = {} AND {key} IN ({})",
        literal(pipeline),
        list.join(", ")
    )
}

/// As [`replace_keyed`], from a staging table holding the new rows.
pub fn replace_keyed_from(s: &str, table: &str, key: &str, stage: &str) -> Vec<String> {
    vec![
        format!(
            "DELETE FROM {s}.{table} USING {s}.{stage} AS n WHERE {table}.pipeline = n.pipeline \
             AND {table}.{key} = n.{key}"
        ),
        format!("INSERT INTO {s}.{table} SELECT * FROM {s}.{stage}"),
    ]
}

/// The columns of the target tables, to find extra columns.
pub fn columns_of(schema: &str, tables: &[&str]) -> String {
    let names: Vec<String> = tables.iter().map(|t| literal(t)).collect();
    format!(
        "SELECT table_name, column_name FROM information_schema.columns \
         WHERE table_schema = {} AND table_name IN ({})",
        literal(schema),
        names.join(", ")
    )
}

/// The pipeline's checkpoints: (stream, position, committed_at).
pub fn checkpoints(s: &str, pipeline: &str) -> String {
    format!(
        "SELECT stream, position, committed_at FROM {s}._sluice_checkpoints WHERE pipeline = {} ORDER BY stream",
        literal(pipeline)
    )
}

pub fn tables_in(schema: &str) -> String {
    format!("SELECT table_name FROM information_schema.tables WHERE table_schema = {}", literal(schema))
}

/// (live rows, deleted rows) of a target.
pub fn row_counts(s: &str, t: &str) -> String {
    format!(
        "SELECT COUNT(CASE WHEN NOT is_deleted THEN 1 END), COUNT(CASE WHEN is_deleted THEN 1 END) FROM {s}.{t}"
    )
}

pub fn tombstone_count(s: &str, target: &str) -> String {
    format!("SELECT COUNT(*) FROM {s}._sluice_tombstones WHERE target = {}", literal(target))
}

/// Bytes of a document shown by `sluice status`.
const PREVIEW_BYTES: usize = 160;

/// The newest rows: (keys, is_deleted, the hex of the first bytes of the
/// serialized new_image, its whole size). Every column is bounded, so a row
/// stays far under the Data API's 64 KB per result row whatever the item's
/// size; VARBYTE avoids JSON_SERIALIZE's VARCHAR limit.
pub fn newest_rows(s: &str, t: &str, limit: usize) -> String {
    format!(
        "SELECT LEFT(keys, 200), is_deleted, \
         TO_HEX(SUBSTRING(JSON_SERIALIZE_TO_VARBYTE(new_image), 1, {PREVIEW_BYTES})), JSON_SIZE(new_image) \
         FROM {s}.{t} ORDER BY change_micros DESC, keys LIMIT {limit}"
    )
}

/// A document's preview from `newest_rows`' hex prefix and size: whole
/// characters only, and `…` when the document is longer.
pub fn preview(hex: &str, size: usize) -> String {
    let bytes: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to here"),
    };
    if size > bytes.len() { format!("{text}…") } else { text.to_owned() }
}

pub fn dead_letter_count(s: &str, pipeline: &str) -> String {
    format!("SELECT COUNT(*) FROM {s}._sluice_dead_letters WHERE pipeline = {}", literal(pipeline))
}

/// The newest dead letters' origins and reasons, cut short to keep rows small.
pub fn recent_dead_letters(s: &str, pipeline: &str) -> String {
    format!(
        "SELECT LEFT(origin, 300), LEFT(reason, 500) FROM {s}._sluice_dead_letters WHERE pipeline = {} \
         ORDER BY failed_at DESC, origin LIMIT 5",
        literal(pipeline)
    )
}

/// The byte length of the longest string (member names included) in JSON
/// text, unescaped: what SUPER's string limit applies to.
pub fn longest_string(json: &str) -> usize {
    let b = json.as_bytes();
    let (mut longest, mut i) = (0, 0);
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let (mut len, mut j) = (0usize, i + 1);
        while j < b.len() && b[j] != b'"' {
            if b[j] == b'\\' {
                if b.get(j + 1) == Some(&b'u') {
                    let unit = u32::from_str_radix(json.get(j + 2..j + 6).unwrap_or("0"), 16).unwrap_or(0);
                    len += match unit {
                        0..0x80 => 1,
                        0x80..0x800 => 2,
                        0xD800..0xDC00 => 2, // half of a 4-byte character
                        0xDC00..0xE000 => 2,
                        _ => 3,
                    };
                    j += 6;
                } else {
                    len += 1;
                    j += 2;
                }
            } else {
                len += 1;
                j += 1;
            }
        }
        longest = longest.max(len);
        i = j + 1;
    }
    longest
}
