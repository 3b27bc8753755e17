//! The standard columns of every sink table, defined once: name, kind and
//! meaning, and how a row fills each. Every sink derives its DDL from the
//! kinds (an exhaustive `match`, so a new kind does not compile until each
//! sink maps it) and its encoder from [`cells`]. Adding a column is one entry
//! here.

use crate::ident;
use crate::record::{Operation, Row, Value};

/// What a column holds, which decides its SQL type in each sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text that is always present, of at most `max_bytes` (Redshift's
    /// VARCHAR width; the other databases do not bound text).
    Text {
        max_bytes: usize,
    },
    /// A message that may be absent.
    Message,
    /// A JSON document that may be absent (`SUPER`, `jsonb`).
    Document,
    Flag,
    /// A 64-bit integer.
    BigInt,
    /// A 32-bit integer.
    Int,
    /// The record's bytes, stored as text where the sink's text holds them
    /// and NULL otherwise (the size column keeps the length).
    Raw,
}

/// One standard column.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// For people: the README's column table says the same.
    pub meaning: &'static str,
    value: for<'a> fn(&'a Row) -> Cell<'a>,
}

/// One value of a row, before a sink encodes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(&'a str),
    Json(&'a str),
    Bool(bool),
    Int(i64),
    Raw(&'a [u8]),
}

/// The seed's layout, then what ordering needs.
pub const STANDARD: [Column; 16] = [
    Column {
        name: "table_name",
        kind: Kind::Text { max_bytes: 256 },
        meaning: "the DynamoDB table",
        value: |r| Cell::Text(&r.change.table),
    },
    Column {
        name: "keys",
        kind: Kind::Text { max_bytes: 65535 },
        meaning: "the item's key as compact JSON, attributes sorted",
        value: |r| Cell::Text(&r.change.key),
    },
    Column {
        name: "event_id",
        kind: Kind::Text { max_bytes: 256 },
        meaning: "the change's eventID",
        value: |r| Cell::Text(&r.change.event_id),
    },
    Column {
        name: "last_event_name",
        kind: Kind::Text { max_bytes: 64 },
        meaning: "INSERT, MODIFY or REMOVE",
        value: |r| Cell::Text(&r.change.event_name),
    },
    Column {
        name: "approx_creation_timestamp_millis",
        kind: Kind::BigInt,
        meaning: "ApproximateCreationDateTime in milliseconds",
        value: |r| Cell::Int((r.change.order.micros / 1000) as i64),
    },
    Column {
        name: "new_image",
        kind: Kind::Document,
        meaning: "the item after the change as plain JSON; NULL once deleted",
        value: |r| match &r.change.new_image {
            Some(image) if !r.change.operation.is_delete() => Cell::Json(image),
            _ => Cell::Null,
        },
    },
    Column {
        name: "old_image",
        kind: Kind::Document,
        meaning: "the item before the change, when the stream carries it",
        value: |r| r.change.old_image.as_deref().map_or(Cell::Null, Cell::Json),
    },
    Column {
        name: "error",
        kind: Kind::Message,
        meaning: "what the transform found wrong with a row it still made",
        value: |r| r.change.error.as_deref().map_or(Cell::Null, Cell::Text),
    },
    Column {
        name: "has_parsing_error",
        kind: Kind::Flag,
        meaning: "error is set",
        value: |r| Cell::Bool(r.change.error.is_some()),
    },
    Column {
        name: "is_deleted",
        kind: Kind::Flag,
        meaning: "the item was deleted (soft deletes keep the row)",
        value: |r| Cell::Bool(r.change.operation.is_delete()),
    },
    Column {
        name: "is_ttl_delete",
        kind: Kind::Flag,
        meaning: "the delete was DynamoDB's time to live",
        value: |r| Cell::Bool(r.change.operation == Operation::TtlDelete),
    },
    Column {
        name: "raw_payload_size_bytes",
        kind: Kind::Int,
        meaning: "the size of the record as the source delivered it",
        value: |r| Cell::Int(r.raw.len() as i64),
    },
    Column {
        name: "raw_payload",
        kind: Kind::Raw,
        meaning: "the record as the source delivered it",
        value: |r| r.raw.kept().map_or(Cell::Null, Cell::Raw),
    },
    Column {
        name: "change_micros",
        kind: Kind::BigInt,
        meaning: "the change's time in microseconds: the first part of its order",
        value: |r| Cell::Int(r.change.order.micros as i64),
    },
    Column {
        name: "change_seq",
        kind: Kind::Text { max_bytes: 256 },
        meaning: "the sequence number that orders changes within a microsecond",
        value: |r| Cell::Text(&r.change.order.tiebreak),
    },
    Column {
        name: "source_position",
        kind: Kind::Text { max_bytes: 1024 },
        meaning: "where the record came from: a shard and sequence number, a file and line",
        value: |r| Cell::Text(&r.origin),
    },
];

/// Whether `name` is a standard column (guests' extra columns may not reuse one).
pub fn is_standard(name: &str) -> bool {
    STANDARD.iter().any(|c| c.name == name)
}

/// The standard columns' names, then `extras` as given.
pub fn names(extras: &[String]) -> impl Iterator<Item = &str> {
    STANDARD.iter().map(|c| c.name).chain(extras.iter().map(String::as_str))
}

/// [`names`] as SQL: the standard names as they are (plain lower-case
/// identifiers), extra columns quoted.
pub fn sql_names(extras: &[String]) -> Vec<String> {
    STANDARD.iter().map(|c| c.name.to_owned()).chain(extras.iter().map(|e| ident::quote(e))).collect()
}

/// A row's values in the order of [`names`]: the standard columns, then the
/// extra columns `extras` lists (NULL where the row has none).
pub fn cells<'a>(row: &'a Row, extras: &'a [String]) -> impl Iterator<Item = Cell<'a>> {
    STANDARD.iter().map(move |c| (c.value)(row)).chain(extras.iter().map(move |name| {
        match row.change.extra.iter().find(|col| col.name == *name).map(|col| &col.value) {
            None | Some(Value::Null) => Cell::Null,
            Some(Value::Bool(b)) => Cell::Bool(*b),
            Some(Value::Integer(i)) => Cell::Int(*i),
            Some(Value::Text(t)) => Cell::Text(t),
            Some(Value::Json(j)) => Cell::Json(j),
        }
    }))
}

/// The position of a standard column in [`names`], counting from 0.
pub fn position(name: &str) -> usize {
    STANDARD.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("{name} is not a standard column"))
}
