//! The manifest's top level as written: serde types, one per section. Every
//! section rejects unknown fields, and the comments here are the field
//! reference.
//!
//! `[source]` and `[sink]` are tagged by `type`. They are read in two steps
//! (the tag here, then the section as its component's own `config::Section`)
//! so that an unknown field is reported at its own line, not at the section
//! header.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use toml::Spanned;

/// The top level of a manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Names the pipeline; its checkpoints in the sink are kept under this name.
    pub name: Spanned<String>,
    /// Where records come from. Read separately, by its `type`.
    pub source: Tagged,
    /// Where rows go. Read separately, by its `type`.
    pub sink: Tagged,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub guest: Guest,
    #[serde(default)]
    pub run: Run,
    #[serde(default)]
    pub telemetry: Telemetry,
    /// Several workers share the stream through a lease table.
    pub coordination: Option<crate::coordination::Section>,
    /// Where records of tables without a `[[tables]]` entry go.
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub tables: Vec<Table>,
}

/// Only the `type` of a tagged section; the rest is read by type.
#[derive(Debug, Deserialize)]
pub struct Tagged {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
}

/// The document again, seen only through `[source]`.
#[derive(Debug, Deserialize)]
pub struct SourceSection<T> {
    pub source: Typed<T>,
}

/// The document again, seen only through `[sink]`.
#[derive(Debug, Deserialize)]
pub struct SinkSection<T> {
    pub sink: Typed<T>,
}

/// A table tagged by `type`, with the tag held apart from the component's
/// own `section`: so a component's section denies unknown fields without
/// declaring the tag, and its errors still point at their own lines.
#[derive(Debug)]
pub struct Typed<T> {
    pub kind: Spanned<String>,
    pub section: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Typed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TypedVisitor(PhantomData))
    }
}

struct TypedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for TypedVisitor<T> {
    type Value = Typed<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table with a `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Typed<T>, A::Error> {
        let mut kind = None;
        let section = T::deserialize(MapAccessDeserializer::new(WithoutType { map, kind: &mut kind }))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(Typed { kind, section })
    }
}

/// The entries of a table but `type`, whose value it keeps.
struct WithoutType<'k, A> {
    map: A,
    kind: &'k mut Option<Spanned<String>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutType<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        // The key is read through the table's own map, so an unknown field's
        // error still carries its line.
        while let Some(key) = self.map.next_key_seed(UnlessType(&mut seed))? {
            match key {
                Some(key) => return Ok(Some(key)),
                None => *self.kind = Some(self.map.next_value()?),
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads a key with the section's seed, unless it is `type` (then `None`,
/// and the seed is kept for the next key).
struct UnlessType<'s, K>(&'s mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for UnlessType<'_, K> {
    type Value = Option<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for UnlessType<'_, K> {
    type Value = Option<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if key == "type" {
            return Ok(None);
        }
        let seed = self.0.take().expect("a seed per key");
        seed.deserialize(key.into_deserializer()).map(Some)
    }
}

/// `[batch]`: a batch is cut at whichever limit comes first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Records per batch (default 500).
    pub max_records: Option<Spanned<i64>>,
    /// Payload bytes per batch (default 4 MiB).
    pub max_bytes: Option<Spanned<i64>>,
    /// The longest a batch waits to fill before it is sent (default 1000).
    pub max_wait_ms: Option<Spanned<i64>>,
    /// How long a stream's batch that has records waits for more when none
    /// are ready (default 0 with group commit: batches read while the sink
    /// is busy merge anyway; else `max_wait_ms`).
    pub linger_ms: Option<Spanned<i64>>,
    /// While the sink commits one batch, the batches read meanwhile are
    /// merged into the next transaction, up to this many records (default
    /// 10000; 0 commits every batch on its own).
    pub max_coalesce: Option<Spanned<i64>>,
}

/// `[run]`: when a run stops by itself, before committing a batch that
/// crosses a limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The most records one run may dead-letter.
    pub max_dead_letters: Option<Spanned<i64>>,
    /// The largest share of the records read (0 to 1) one run may
    /// dead-letter, checked once it has read 100 records.
    pub max_dead_letter_ratio: Option<Spanned<f64>>,
}

/// `[telemetry]`: what operators can watch from outside.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Serve `/metrics` and `/health` here, e.g. "127.0.0.1:9898".
    pub metrics_addr: Option<Spanned<String>>,
    /// `/health` answers 503 once nothing moved for this long (default "60s").
    pub stall_after: Option<Spanned<String>>,
}

/// `[guest]`: limits for every transform instance.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// The most CPU time one call of a transform may take, in milliseconds
    /// (default 5000).
    pub time_budget_ms: Option<Spanned<i64>>,
    /// CPU time per record of a call, in milliseconds (default 10): a call of n
    /// records may take n times this, up to `time_budget_ms`. Time spent
    /// waiting for the host's `fetch` does not count.
    pub record_budget_ms: Option<Spanned<i64>>,
    /// Linear memory one instance may use (default 256).
    pub memory_limit_mb: Option<Spanned<i64>>,
    /// Instances of a table's transform that share a large batch, each on
    /// its own thread (default: the machine's cores less one, for the sink).
    pub threads: Option<Spanned<i64>>,
}

/// `[defaults]`: the route for tables that have no `[[tables]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub target: Spanned<String>,
    pub transform: Option<Spanned<String>>,
    pub deletes: Option<Spanned<String>>,
    pub raw_payload: Option<Spanned<String>>,
}

/// `[[tables]]`: one DynamoDB table and where its rows go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The DynamoDB table name (`tableName` in records).
    pub source: Spanned<String>,
    /// The sink table; created if missing.
    pub target: Spanned<String>,
    /// `builtin:<name>` or a path to a `.wasm` component (default `builtin:ddb-json`).
    pub transform: Option<Spanned<String>>,
    /// The key attribute names (needed for exports).
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// `soft` (default: keep the row, `is_deleted = true`) or `hard`.
    pub deletes: Option<Spanned<String>>,
    /// `keep` (default: the record as delivered, in `raw_payload`) or
    /// `drop` (only its size): for a transform that removes private data.
    pub raw_payload: Option<Spanned<String>>,
    /// Passed to the transform's `configure` as name/value pairs.
    #[serde(default)]
    pub settings: toml::Table,
    /// What the transform may fetch (`builtin:s3-join` needs it).
    pub join: Option<Join>,
}

/// `[tables.join]`: the only objects the table's transform may read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The item attribute holding the object's URI (default `s3_uri`);
    /// passed to the transform as the setting `attribute`.
    pub attribute: Option<Spanned<String>>,
    /// `s3://bucket/prefix/` (the seed's S3JoinPath): objects outside it
    /// are refused.
    pub prefix: Spanned<String>,
    /// Larger objects are refused (default 1048576).
    pub max_object_bytes: Option<Spanned<i64>>,
    /// Per object (default 10000).
    pub timeout_ms: Option<Spanned<i64>>,
    /// Fetched objects kept for reuse, in MiB (default 64).
    pub cache_mb: Option<Spanned<i64>>,
}

/// The manifest seen only for where its values are, to point a check made
/// after parsing (a guest that does not start) at its line.
#[derive(Debug, Deserialize)]
pub struct Located {
    source: Fields,
    sink: Fields,
    defaults: Option<Fields>,
    #[serde(default)]
    tables: Vec<Fields>,
}

type Fields = std::collections::HashMap<String, Spanned<toml::Value>>;

impl Located {
    pub fn span(&self, field: super::Field) -> Option<std::ops::Range<usize>> {
        use super::Field;
        let at =
            |fields: &Fields, names: &[&str]| names.iter().find_map(|n| fields.get(*n)).map(Spanned::span);
        match field {
            Field::Transform { table } => {
                let entry = self.tables.iter().find(|t| {
                    t.get("source").and_then(|s| s.get_ref().as_str()).is_some_and(|s| s == table)
                })?;
                at(entry, &["transform", "source"])
            }
            Field::DefaultsTransform => at(self.defaults.as_ref()?, &["transform", "target"]),
            Field::Source(name) => at(&self.source, &[name, "type"]),
            Field::Sink(name) => at(&self.sink, &[name, "type"]),
        }
    }
}
