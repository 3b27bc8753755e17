//! The statements of the PostgreSQL sink, written once here so they can be
//! read (and reviewed) together. `s` is the quoted schema, `t` the quoted
//! target table, `stage` the batch's temporary staging table.

use crate::columns::{self, Kind};
use crate::ident::quote;
use crate::sinks::SameEvent;

/// Serialises sluice's DDL: `CREATE ... IF NOT EXISTS` is not safe against
/// a concurrent `CREATE`, so two runs starting on a fresh schema took turns
/// failing with a catalogue error. Held to the end of the DDL's transaction.
pub const DDL_LOCK: &str = "SELECT pg_advisory_xact_lock(7432090514310826)";

/// sluice's own tables in schema `s`, and the function that indexes keys.
///
/// A btree index row holds at most about 2.7 KB, and a DynamoDB key up to
/// 3 KB (more as JSON), so keys are indexed by their SHA-256 and compared in
/// full. `convert_to` is only STABLE (it depends on the database's encoding,
/// which cannot change), so the digest is wrapped in an IMMUTABLE function an
/// index may use.
pub fn state_schema(s: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
CREATE OR REPLACE FUNCTION {s}._sluice_key_digest(text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT sha256(convert_to($1, 'UTF8')) $$;
CREATE TABLE IF NOT EXISTS {s}._sluice_writers (
    pipeline text PRIMARY KEY,
    epoch bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}._sluice_checkpoints (
    pipeline text NOT NULL,
    stream text NOT NULL,
    position text NOT NULL,
    epoch bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, stream)
);
CREATE TABLE IF NOT EXISTS {s}._sluice_leases (
    pipeline text NOT NULL,
    stream text NOT NULL,
    lease bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, stream)
);
CREATE TABLE IF NOT EXISTS {s}._sluice_dead_letters (
    pipeline text NOT NULL,
    origin text NOT NULL,
    table_name text,
    reason text NOT NULL,
    raw bytea NOT NULL,
    raw_size_bytes integer NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, origin)
);
CREATE TABLE IF NOT EXISTS {s}._sluice_tombstones (
    target text NOT NULL,
    table_name text NOT NULL,
    keys text NOT NULL,
    change_micros bigint NOT NULL,
    change_seq text NOT NULL,
    event_id text NOT NULL,
    source_position text NOT NULL
);
{}
CREATE UNIQUE INDEX IF NOT EXISTS _sluice_tombstones_key ON {s}._sluice_tombstones (target, table_name, {s}._sluice_key_digest(keys));",
        drop_primary_key(s, "_sluice_tombstones")
    )
}

/// Tables made by an older sluice had the key itself in their primary key,
/// which a large key overflows; the digest index replaces it.
fn drop_primary_key(s: &str, t: &str) -> String {
    format!(
        "DO $$ DECLARE c text; BEGIN
    SELECT conname INTO c FROM pg_constraint WHERE conrelid = '{s}.{t}'::regclass AND contype = 'p';
    IF c IS NOT NULL THEN EXECUTE format('ALTER TABLE {s}.{t} DROP CONSTRAINT %I', c); END IF;
END $$;"
    )
}

/// The PostgreSQL type of each kind of standard column.
fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text { .. } => "text NOT NULL",
        Kind::Message | Kind::Raw => "text",
        Kind::Document => "jsonb",
        Kind::BigInt => "bigint NOT NULL",
        Kind::Int => "integer NOT NULL",
        Kind::Flag => "boolean NOT NULL",
    }
}

/// A target table, unique by (table_name, key) through the key's digest.
/// `target` is the unquoted name, which names its index.
pub fn create_target(s: &str, target: &str) -> String {
    let t = quote(target);
    let columns: Vec<String> =
        columns::STANDARD.iter().map(|c| format!("{} {}", c.name, column_type(c.kind))).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.{t} ({});
{}
CREATE UNIQUE INDEX IF NOT EXISTS {} ON {s}.{t} (table_name, {}(keys));",
        columns.join(", "),
        drop_primary_key(s, &t),
        quote(&key_index(target)),
        digest(s),
    )
}

/// The digest function, schema-qualified.
fn digest(s: &str) -> String {
    format!("{s}._sluice_key_digest")
}

/// The name of a target's key index: short (targets may be longer than an
/// index name leaves room for) and unique in the schema.
fn key_index(target: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(target.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("_sluice_key_{hash}")
}

/// "`a` and `b` hold the same item": the digest comparison lets the index
/// find it, the full comparison makes it exact.
fn same_item(s: &str, a: &str, b: &str) -> String {
    let d = digest(s);
    format!("{a}.table_name = {b}.table_name AND {d}({a}.keys) = {d}({b}.keys) AND {a}.keys = {b}.keys")
}

/// An order as a row value: micros, then the sequence compared as a number
/// (by length, then bytewise, whatever the database's collation).
fn order(alias: &str) -> String {
    format!("({alias}.change_micros, length({alias}.change_seq), {alias}.change_seq COLLATE \"C\")")
}

/// "`new` is a change `old` already holds" (the same event id, delivered
/// again): unless replaying, such a change is not applied.
fn same_event(mode: SameEvent, new: &str, old: &str) -> String {
    mode.held(&format!("{new}.event_id"), &format!("{old}.event_id"))
}

pub fn create_stage(s: &str, t: &str, stage: &str) -> String {
    format!("CREATE TEMP TABLE {stage} (LIKE {s}.{t}) ON COMMIT DROP")
}

pub fn copy_stage(stage: &str, columns: &[String]) -> String {
    format!("COPY {stage} ({}) FROM STDIN", columns.join(", "))
}

/// Hard deletes: staged changes older than a tombstone are dropped. $1 = target.
pub fn drop_older_than_tombstones(s: &str, stage: &str) -> String {
    format!(
        "DELETE FROM {stage} AS n USING {s}._sluice_tombstones AS b \
         WHERE b.target = $1 AND {} AND {} > {}",
        same_item(s, "b", "n"),
        order("b"),
        order("n")
    )
}

/// Upserts (and soft deletes) at least as new as the stored row; returns
/// (upserts applied, deletes applied).
pub fn upsert(s: &str, t: &str, stage: &str, columns: &[String], hard: bool, mode: SameEvent) -> String {
    let list = columns.join(", ");
    let updates: Vec<String> = columns[2..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let only_upserts = if hard { " WHERE NOT n.is_deleted" } else { "" };
    format!(
        "WITH applied AS (\
         INSERT INTO {s}.{t} AS o ({list}) SELECT {list} FROM {stage} AS n{only_upserts} \
         ON CONFLICT (table_name, {}(keys)) DO UPDATE SET {} \
         WHERE o.keys = excluded.keys AND {} >= {} AND NOT {} RETURNING o.is_deleted) \
         SELECT count(*) FILTER (WHERE NOT is_deleted), count(*) FILTER (WHERE is_deleted) FROM applied",
        digest(s),
        updates.join(", "),
        order("excluded"),
        order("o"),
        same_event(mode, "excluded", "o")
    )
}

/// Hard deletes remove rows no newer than themselves.
pub fn delete_rows(s: &str, t: &str, stage: &str, mode: SameEvent) -> String {
    format!(
        "DELETE FROM {s}.{t} AS o USING {stage} AS n \
         WHERE n.is_deleted AND {} AND {} >= {} AND NOT {}",
        same_item(s, "o", "n"),
        order("n"),
        order("o"),
        same_event(mode, "n", "o")
    )
}

/// Hard deletes leave a tombstone unless a newer row stays; returns how many
/// deletes were applied. $1 = target.
pub fn tombstone(s: &str, t: &str, stage: &str, mode: SameEvent) -> String {
    format!(
        "WITH applied AS (\
         INSERT INTO {s}._sluice_tombstones AS b \
         (target, table_name, keys, change_micros, change_seq, event_id, source_position) \
         SELECT $1, n.table_name, n.keys, n.change_micros, n.change_seq, n.event_id, n.source_position \
         FROM {stage} AS n WHERE n.is_deleted \
         AND NOT EXISTS (SELECT 1 FROM {s}.{t} AS o WHERE {}) \
         ON CONFLICT (target, table_name, {}(keys)) DO UPDATE SET change_micros = excluded.change_micros, \
         change_seq = excluded.change_seq, event_id = excluded.event_id, source_position = excluded.source_position \
         WHERE b.keys = excluded.keys AND {} >= {} AND NOT {} RETURNING 1) SELECT count(*) FROM applied",
        same_item(s, "o", "n"),
        digest(s),
        order("excluded"),
        order("b"),
        same_event(mode, "excluded", "b")
    )
}

/// A re-insert after a hard delete removes the tombstone. $1 = target.
pub fn clear_tombstones(s: &str, stage: &str) -> String {
    format!(
        "DELETE FROM {s}._sluice_tombstones AS b USING {stage} AS n \
         WHERE NOT n.is_deleted AND b.target = $1 AND {} AND {} >= {}",
        same_item(s, "b", "n"),
        order("n"),
        order("b")
    )
}

/// Makes sure a partition has a fencing row, so that it can be locked.
pub fn lease_row(s: &str) -> String {
    format!(
        "INSERT INTO {s}._sluice_leases (pipeline, stream, lease) VALUES ($1, $2, $3) \
         ON CONFLICT (pipeline, stream) DO NOTHING"
    )
}

/// The newest lease counter that claimed a partition, locked to the end of
/// the transaction so a claim and a commit of one partition take turns.
pub fn lease_fence(s: &str) -> String {
    format!("SELECT lease FROM {s}._sluice_leases WHERE pipeline = $1 AND stream = $2 FOR UPDATE")
}

pub fn raise_lease(s: &str) -> String {
    format!(
        "UPDATE {s}._sluice_leases SET lease = $3, claimed_at = now() WHERE pipeline = $1 AND stream = $2"
    )
}

pub fn position(s: &str) -> String {
    format!("SELECT position FROM {s}._sluice_checkpoints WHERE pipeline = $1 AND stream = $2")
}

pub fn fence(s: &str) -> String {
    format!("SELECT epoch FROM {s}._sluice_writers WHERE pipeline = $1 FOR UPDATE")
}

pub fn claim_epoch(s: &str) -> String {
    format!(
        "INSERT INTO {s}._sluice_writers AS w (pipeline, epoch) VALUES ($1, 1) \
         ON CONFLICT (pipeline) DO UPDATE SET epoch = w.epoch + 1, started_at = now() RETURNING epoch"
    )
}

pub fn dead_letter(s: &str) -> String {
    format!(
        "INSERT INTO {s}._sluice_dead_letters (pipeline, origin, table_name, reason, raw, raw_size_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (pipeline, origin) DO UPDATE SET table_name = excluded.table_name, reason = excluded.reason, \
         raw = excluded.raw, raw_size_bytes = excluded.raw_size_bytes, failed_at = now()"
    )
}

pub fn checkpoint(s: &str) -> String {
    format!(
        "INSERT INTO {s}._sluice_checkpoints (pipeline, stream, position, epoch) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (pipeline, stream) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, \
         committed_at = now()"
    )
}

pub fn add_column(s: &str, t: &str, column: &str, ty: &str) -> String {
    format!("ALTER TABLE {s}.{t} ADD COLUMN IF NOT EXISTS {} {ty}", quote(column))
}
