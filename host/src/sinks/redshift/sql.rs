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

use crate::ident::quote;
use crate::record::{Row, Value};
use crate::sinks::COLUMNS;

/// The Data API's limit for one statement is 100 KB; leave headroom.
pub const MAX_STATEMENT_BYTES: usize = 95_000;
/// BatchExecuteStatement runs at most 40 statements, in one transaction.
pub const MAX_BATCH_STATEMENTS: usize = 40;
/// sluice keeps one request under 1 MB of SQL: the Redshift Data API
/// documents no request limit, its sibling the RDS Data API refuses requests
/// over 4 MiB, and JSON encoding can double the size of SQL full of quotes.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// The widest VARCHAR Redshift has, in bytes.
pub const MAX_VARCHAR: usize = 65_535;
/// The largest SUPER value, in bytes.
pub const MAX_SUPER: usize = 16 * 1024 * 1024;

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

/// The Redshift type of each standard column: the seed's layout.
pub fn column_type(column: &str) -> &'static str {
    match column {
        "table_name" | "event_id" | "change_seq" => "VARCHAR(256) NOT NULL",
        "last_event_name" => "VARCHAR(64) NOT NULL",
        "keys" => "VARCHAR(65535) NOT NULL",
        "source_position" => "VARCHAR(1024) NOT NULL",
        "new_image" | "old_image" => "SUPER",
        "error" | "raw_payload" => "VARCHAR(65535)",
        "approx_creation_timestamp_millis" | "change_micros" => "BIGINT NOT NULL",
        "raw_payload_size_bytes" => "INTEGER NOT NULL",
        _ => "BOOLEAN NOT NULL",
    }
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

/// sluice's own tables in schema `s` (quoted).
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
             raw VARCHAR(65535) NOT NULL, raw_encoding VARCHAR(16) NOT NULL, raw_size_bytes INTEGER NOT NULL, \
             raw_truncated BOOLEAN NOT NULL, failed_at TIMESTAMP NOT NULL, PRIMARY KEY (pipeline, origin))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}._sluice_tombstones (target VARCHAR(256) NOT NULL, \
             table_name VARCHAR(256) NOT NULL, keys VARCHAR(65535) NOT NULL, change_micros BIGINT NOT NULL, \
             change_seq VARCHAR(256) NOT NULL, event_id VARCHAR(256) NOT NULL, \
             source_position VARCHAR(1024) NOT NULL, PRIMARY KEY (target, table_name, keys))"
        ),
    ]
}

pub fn create_target(s: &str, t: &str) -> String {
    let columns: Vec<String> = COLUMNS.iter().map(|c| format!("{c} {}", column_type(c))).collect();
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
        format!("SELECT epoch FROM {s}._sluice_writers WHERE pipeline = {p}"),
    ]
}

/// Fails the whole transaction (division by zero) when a newer run has
/// claimed the pipeline. The error names no table, so the sink recognises it
/// by its position: always the first statement of a batch.
pub fn fence(s: &str, pipeline: &str, epoch: i64) -> String {
    format!(
        "SELECT 1 / (CASE WHEN epoch = {epoch} THEN 1 ELSE 0 END) FROM {s}._sluice_writers WHERE pipeline = {}",
        literal(pipeline)
    )
}

pub fn create_stage(s: &str, t: &str, stage: &str) -> String {
    format!("CREATE TEMP TABLE {stage} (LIKE {s}.{t})")
}

/// One staged row as a VALUES tuple.
pub fn tuple(row: &Row, extras: &[String], raw_payload: Option<&str>) -> String {
    let c = &row.change;
    let deleted = c.operation.is_delete();
    let text = |v: Option<&str>| v.map_or_else(|| "NULL".to_owned(), literal);
    let document =
        |v: Option<&str>| v.map_or_else(|| "NULL".to_owned(), |j| format!("JSON_PARSE({})", literal(j)));
    let flag = |b: bool| if b { "TRUE" } else { "FALSE" }.to_owned();
    let mut fields = vec![
        literal(&c.table),
        literal(&c.key),
        literal(&c.event_id),
        literal(&c.event_name),
        (c.order.micros / 1000).to_string(),
        document(if deleted { None } else { c.new_image.as_deref() }),
        document(c.old_image.as_deref()),
        text(c.error.as_deref()),
        flag(c.error.is_some()),
        flag(deleted),
        flag(c.operation == crate::record::Operation::TtlDelete),
        row.raw.len().to_string(),
        text(raw_payload),
        c.order.micros.to_string(),
        literal(&c.order.tiebreak),
        literal(&row.origin),
    ];
    for name in extras {
        fields.push(match c.extra.iter().find(|col| col.name == *name).map(|col| &col.value) {
            None | Some(Value::Null) => "NULL".to_owned(),
            Some(Value::Bool(b)) => flag(*b),
            Some(Value::Integer(i)) => i.to_string(),
            Some(Value::Text(t)) => literal(t),
            Some(Value::Json(j)) => document(Some(j)),
        });
    }
    format!("({})", fields.join(", "))
}

/// Splits tuples into runs small enough for one INSERT statement each
/// (with `columns`, into a table whose quoted name is at most 256 bytes).
pub fn insert_runs(columns: &[String], tuples: &[String]) -> Vec<std::ops::Range<usize>> {
    let head = 256 + columns.iter().map(|c| c.len() + 2).sum::<usize>() + 40;
    let mut runs = Vec::new();
    let (mut start, mut size) = (0, head);
    for (i, t) in tuples.iter().enumerate() {
        if i > start && size + 2 + t.len() > MAX_STATEMENT_BYTES {
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

pub fn insert(table: &str, columns: &[String], tuples: &[String]) -> String {
    format!("INSERT INTO {table} ({}) VALUES {}", columns.join(", "), tuples.join(", "))
}

pub fn copy_stage(stage: &str, columns: &[String], uri: &str, iam_role: &str) -> String {
    let role =
        if iam_role.eq_ignore_ascii_case("default") { "default".to_owned() } else { literal(iam_role) };
    format!(
        "COPY {stage} ({}) FROM {} IAM_ROLE {role} FORMAT AS JSON 'auto' GZIP",
        columns.join(", "),
        literal(uri)
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

/// Drops staged changes older than the stored row: the ordering guard.
pub fn drop_stale(s: &str, t: &str, stage: &str) -> String {
    format!(
        "DELETE FROM {stage} USING {s}.{t} AS o WHERE {stage}.table_name = o.table_name \
         AND {stage}.keys = o.keys AND {}",
        newer("o", stage)
    )
}

/// Hard deletes: drops staged changes older than a tombstone.
pub fn drop_older_than_tombstones(s: &str, target: &str, stage: &str) -> String {
    format!(
        "DELETE FROM {stage} USING {s}._sluice_tombstones AS b WHERE b.target = {} \
         AND {stage}.table_name = b.table_name AND {stage}.keys = b.keys AND {}",
        literal(target),
        newer("b", stage)
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

/// A dead letter as a VALUES tuple (pipeline, origin, table_name, reason,
/// raw, raw_encoding, raw_size_bytes, raw_truncated, failed_at).
pub fn dead_letter_tuple(
    pipeline: &str,
    origin: &str,
    table: Option<&str>,
    reason: &str,
    raw: &RawText,
) -> String {
    format!(
        "({}, {}, {}, {}, {}, {}, {}, {}, GETDATE())",
        literal(pipeline),
        literal(origin),
        table.map_or_else(|| "NULL".to_owned(), literal),
        literal(reason),
        literal(&raw.text),
        literal(raw.encoding),
        raw.size,
        if raw.truncated { "TRUE" } else { "FALSE" }
    )
}

/// The dead letters' columns, in `dead_letter_tuple` order.
pub fn dead_letter_columns() -> Vec<String> {
    [
        "pipeline",
        "origin",
        "table_name",
        "reason",
        "raw",
        "raw_encoding",
        "raw_size_bytes",
        "raw_truncated",
        "failed_at",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect()
}

/// Dead letters replace any earlier ones from the same origins (a replay):
/// a DELETE of those origins, then the INSERT.
pub fn replace_dead_letters(s: &str, pipeline: &str, origins: &[&str], tuples: &[String]) -> Vec<String> {
    let list: Vec<String> = origins.iter().map(|o| literal(o)).collect();
    vec![
        format!(
            "DELETE FROM {s}._sluice_dead_letters WHERE pipeline = {} AND origin IN ({})",
            literal(pipeline),
            list.join(", ")
        ),
        insert(&format!("{s}._sluice_dead_letters"), &dead_letter_columns(), tuples),
    ]
}

pub fn checkpoint(s: &str, pipeline: &str, stream: &str, position: &str, epoch: i64) -> Vec<String> {
    let (p, st) = (literal(pipeline), literal(stream));
    vec![
        format!("DELETE FROM {s}._sluice_checkpoints WHERE pipeline = {p} AND stream = {st}"),
        format!(
            "INSERT INTO {s}._sluice_checkpoints (pipeline, stream, position, epoch, committed_at) \
             VALUES ({p}, {st}, {}, {epoch}, GETDATE())",
            literal(position)
        ),
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

pub fn newest_rows(s: &str, t: &str, limit: usize) -> String {
    format!(
        "SELECT keys, is_deleted, JSON_SERIALIZE(new_image) FROM {s}.{t} ORDER BY change_micros DESC, keys LIMIT {limit}"
    )
}

pub fn dead_letter_count(s: &str, pipeline: &str) -> String {
    format!("SELECT COUNT(*) FROM {s}._sluice_dead_letters WHERE pipeline = {}", literal(pipeline))
}

pub fn recent_dead_letters(s: &str, pipeline: &str) -> String {
    format!(
        "SELECT origin, reason FROM {s}._sluice_dead_letters WHERE pipeline = {} \
         ORDER BY failed_at DESC, origin LIMIT 5",
        literal(pipeline)
    )
}

/// A dead letter's raw bytes as Redshift can hold them: UTF-8 text, else
/// base64, cut to fit one statement.
pub struct RawText {
    pub text: String,
    pub encoding: &'static str,
    pub size: usize,
    pub truncated: bool,
}

/// The most raw text a dead letter keeps in Redshift; its escaped literal
/// must fit in one statement.
const MAX_RAW_TEXT: usize = 40_000;

impl RawText {
    pub fn new(raw: &[u8]) -> Self {
        use base64::Engine as _;
        let (text, encoding) = match std::str::from_utf8(raw) {
            Ok(t) => (t.to_owned(), "utf8"),
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(raw), "base64"),
        };
        let truncated = text.len() > MAX_RAW_TEXT;
        let mut end = text.len().min(MAX_RAW_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        RawText { text: text[..end].to_owned(), encoding, size: raw.len(), truncated }
    }
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
