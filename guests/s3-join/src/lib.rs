//! `builtin:s3-join`: decodes records as `ddb-json` does, then enriches each
//! upsert with the JSON object its `s3_uri` attribute names (the attribute is
//! the `attribute` setting, from `[tables.join]`). Also a model for guests
//! that use the host's `fetch`: collect the batch's URIs, fetch them in one
//! call, then build the rows.
//!
//! Columns added: `s3_uri` (text), `raw_s3_payload` (the object, JSON) and
//! `s3_join_status`: `joined`; `missing` (no such object: `{}`, like the
//! seed's left join); `no_uri` (the item has no such attribute: `{}`);
//! `error` (refused, too large, not JSON, unreadable: the reason is in the
//! row's `error` column and `raw_s3_payload` is null); `deleted` (deletes
//! are not joined).

use std::sync::OnceLock;

use sluice_guest::{
    Column, FetchError, Guest, Operation, Outcome, Row, SourceRecord, TableConfig, Value, fetch,
};

/// The attribute holding the object's URI.
static ATTRIBUTE: OnceLock<String> = OnceLock::new();

struct S3Join;

impl Guest for S3Join {
    fn configure(config: TableConfig) -> Result<(), String> {
        let mut attribute = "s3_uri".to_owned();
        for s in &config.settings {
            match s.name.as_str() {
                "attribute" => attribute = s.value.clone(),
                other => return Err(format!("s3-join has one setting, `attribute`; it was given {other:?}")),
            }
        }
        ATTRIBUTE.set(attribute).map_err(|_| "configure was called twice".to_owned())?;
        sluice_guest::remember(config)
    }

    fn transform(records: Vec<SourceRecord>) -> Vec<Outcome> {
        let attribute = ATTRIBUTE.get().map_or("s3_uri", String::as_str);
        let rows: Vec<Result<Row, String>> = records.into_iter().map(sluice_guest::decode).collect();
        let uris: Vec<Option<Result<String, String>>> =
            rows.iter().map(|r| r.as_ref().ok().and_then(|row| uri_of(row, attribute))).collect();
        let wanted: Vec<String> = uris.iter().filter_map(|u| u.clone()?.ok()).collect();
        let mut fetched = if wanted.is_empty() { Vec::new() } else { fetch(&wanted) }.into_iter();
        rows.into_iter()
            .zip(uris)
            .map(|(row, uri)| match row {
                Err(why) => Outcome::Error(why),
                Ok(row) => {
                    let object = match &uri {
                        Some(Ok(_)) => fetched.next(),
                        _ => None,
                    };
                    Outcome::Row(join(row, uri, object))
                }
            })
            .collect()
    }
}

/// The URI an upsert's item names: `None` when it has no such attribute.
fn uri_of(row: &Row, attribute: &str) -> Option<Result<String, String>> {
    if row.operation != Operation::Upsert {
        return None;
    }
    let item: serde_json::Value = serde_json::from_str(row.new_image.as_deref()?).ok()?;
    match item.get(attribute)? {
        serde_json::Value::String(uri) => Some(Ok(uri.clone())),
        other => Some(Err(format!("the item's {attribute} attribute is not a string: {other}"))),
    }
}

fn join(
    mut row: Row,
    uri: Option<Result<String, String>>,
    object: Option<Result<Vec<u8>, FetchError>>,
) -> Row {
    let empty = || Value::Json("{}".into());
    let (uri_value, payload, status) = match (uri, object) {
        (None, _) if row.operation != Operation::Upsert => (Value::Null, Value::Null, "deleted"),
        (None, _) => (Value::Null, empty(), "no_uri"),
        (Some(Err(why)), _) => {
            row.error = Some(why);
            (Value::Null, Value::Null, "error")
        }
        (Some(Ok(uri)), object) => {
            let outcome = match object {
                Some(Ok(bytes)) => payload(&uri, bytes).map(|json| (Value::Json(json), "joined")),
                Some(Err(FetchError::NotFound)) => Ok((empty(), "missing")),
                Some(Err(FetchError::TooLarge(n))) => Err(format!("{uri} is too large to join ({n} bytes)")),
                Some(Err(FetchError::Refused(why))) => Err(format!("fetch refused: {why}")),
                Some(Err(FetchError::Failed(why))) => Err(format!("fetching {uri} failed: {why}")),
                None => Err(format!("the host returned no result for {uri}")),
            };
            match outcome {
                Ok((payload, status)) => (Value::Text(uri), payload, status),
                Err(why) => {
                    row.error = Some(why);
                    (Value::Text(uri), Value::Null, "error")
                }
            }
        }
    };
    row.extra.push(Column { name: "s3_uri".into(), value: uri_value });
    row.extra.push(Column { name: "raw_s3_payload".into(), value: payload });
    row.extra.push(Column { name: "s3_join_status".into(), value: Value::Text(status.into()) });
    row
}

/// The object's text, if it is one JSON value.
fn payload(uri: &str, bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes).map_err(|_| format!("{uri} is not JSON: not UTF-8 text"))?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("{uri} is not JSON: {e}"))?;
    Ok(text.trim().to_owned())
}

sluice_guest::export!(S3Join);
