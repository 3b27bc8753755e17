//! Checks on what a transform returned, before any sink sees it. Built-in
//! and custom guests alike: a row that would break a database statement is
//! dead-lettered with the reason instead of failing the batch.

use serde::de::IgnoredAny;

use crate::record::{Change, Operation, Value};
use crate::{columns, ident};

/// Longest tie-breaker accepted (Kinesis sequence numbers have up to 128 digits).
const MAX_TIEBREAK: usize = 256;

/// Why a row a guest returned cannot go to a sink.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unusable {
    #[error("the row is for table {row:?}, but the record was routed as table {routed:?}")]
    WrongTable { row: String, routed: String },
    #[error("the key is not a JSON object: {0:?}")]
    KeyNotObject(String),
    #[error("the {what} is not valid JSON: {error}")]
    NotJson { what: String, error: serde_json::Error },
    #[error("an upsert row has no new-image")]
    UpsertWithoutImage,
    #[error("the order's tie-breaker is longer than {MAX_TIEBREAK} bytes")]
    LongTiebreak,
    #[error("extra column: {0}")]
    BadColumnName(#[from] ident::BadName),
    #[error("extra column {0:?} must be lower case and not a standard column")]
    ColumnName(String),
}

/// Checks a row the guest made from a record of DynamoDB table `table`.
pub(super) fn check(change: &Change, table: &str) -> Result<(), Unusable> {
    if change.table != table {
        return Err(Unusable::WrongTable { row: change.table.clone(), routed: table.into() });
    }
    if !change.key.starts_with('{') {
        return Err(Unusable::KeyNotObject(change.key.clone()));
    }
    json(&change.key, "key")?;
    if let Some(image) = &change.new_image {
        json(image, "new-image")?;
    }
    if let Some(image) = &change.old_image {
        json(image, "old-image")?;
    }
    if change.operation == Operation::Upsert && change.new_image.is_none() {
        return Err(Unusable::UpsertWithoutImage);
    }
    if change.order.tiebreak.len() > MAX_TIEBREAK {
        return Err(Unusable::LongTiebreak);
    }
    for column in &change.extra {
        if ident::fold(&column.name)? != column.name || columns::is_standard(&column.name) {
            return Err(Unusable::ColumnName(column.name.clone()));
        }
        if let Value::Json(text) = &column.value {
            json(text, &column.name)?;
        }
    }
    Ok(())
}

fn json(text: &str, what: &str) -> Result<(), Unusable> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|error| Unusable::NotJson { what: what.into(), error })
}
