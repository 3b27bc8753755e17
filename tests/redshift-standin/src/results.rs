//! Running one SQL statement and keeping its result the way the Data API
//! returns it: typed fields and JDBC-like column metadata.
//!
//! Values are fetched with PostgreSQL's simple protocol, which sends every
//! value as text, and typed from the statement's description; that avoids
//! decoding PostgreSQL's binary formats (numeric, timestamps, ...) here.

use serde::Serialize;
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use crate::ddl::Domain;
use crate::engine::error_text;

/// "The Data API size limit is 64 KB per row in the result set": read as
/// 64,000 bytes of the row's values as text, the strictest reading.
const MAX_ROW_BYTES: usize = 64_000;

/// The Data API's limit on a whole result set: 500 MB in the English
/// troubleshooting page, 100 MB in its translations; the stand-in takes
/// the smaller, as bytes of the values as text.
const MAX_RESULT_BYTES: usize = 100_000_000;

/// One value of a result row, serialised as the Data API's `Field` union.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Field {
    StringValue(String),
    LongValue(i64),
    DoubleValue(f64),
    BooleanValue(bool),
    IsNull(bool),
}

/// The Data API's `ColumnMetadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ColumnMetadata {
    pub name: String,
    pub label: String,
    pub type_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_default: Option<String>,
    pub is_case_sensitive: bool,
    pub is_currency: bool,
    pub is_signed: bool,
    pub length: i32,
    pub nullable: i32,
    pub precision: i32,
    pub scale: i32,
    pub schema_name: String,
    pub table_name: String,
}

/// The rows a statement returned.
#[derive(Debug, Clone)]
pub(crate) struct ResultSet {
    pub columns: Vec<ColumnMetadata>,
    pub records: Vec<Vec<Field>>,
    /// Bytes of the values as text: what DescribeStatement reports as ResultSize.
    pub size: i64,
}

/// What a statement did: its rows (if it returns any) and the rows it affected or returned.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub result: Option<ResultSet>,
    pub rows: i64,
}

/// Runs one statement on `client` (in whatever transaction it is in). A
/// result the Data API could not return fails the statement, as the
/// service reports it (DescribeStatement's Error), rolling back a batch.
pub(crate) async fn run(client: &Client, sql: &str) -> Result<Outcome, String> {
    // Preparing describes the columns without running anything; the simple
    // query then runs the statement once and returns text values.
    let statement = client.prepare(sql).await.map_err(|e| error_text(&e))?;
    let messages = client.simple_query(sql).await.map_err(|e| error_text(&e))?;
    let mut records = Vec::new();
    let mut rows = 0;
    let mut size = 0;
    let types = statement.columns().iter().map(|c| c.type_().name()).collect::<Vec<_>>();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                let record: Vec<Field> = (0..row.len())
                    .map(|i| field(types.get(i).copied().unwrap_or("text"), row.get(i)))
                    .collect();
                let row_bytes: usize = record.iter().map(Field::text_len).sum();
                if row_bytes > MAX_ROW_BYTES {
                    return Err(format!(
                        "Packet for query is too large: row {} of the result is {row_bytes} bytes; the Data API \
                         returns rows of at most 64 KB (the stand-in allows {MAX_ROW_BYTES} bytes)",
                        records.len() + 1
                    ));
                }
                size += row_bytes;
                if size > MAX_RESULT_BYTES {
                    return Err(format!(
                        "Database response exceeded size limit: the result is over {MAX_RESULT_BYTES} bytes; \
                         the Data API returns at most 100 MB"
                    ));
                }
                records.push(record);
            }
            SimpleQueryMessage::CommandComplete(n) => rows = n as i64,
            _ => {}
        }
    }
    let result = if statement.columns().is_empty() {
        None
    } else {
        let columns = column_metadata(client, &statement).await.map_err(|e| error_text(&e))?;
        Some(ResultSet { columns, records, size: size as i64 })
    };
    Ok(Outcome { result, rows })
}

impl Field {
    /// The bytes of the value as text, what the row limit counts.
    fn text_len(&self) -> usize {
        match self {
            Field::StringValue(s) => s.len(),
            Field::LongValue(v) => v.to_string().len(),
            Field::DoubleValue(v) => v.to_string().len(),
            Field::BooleanValue(v) => v.to_string().len(),
            Field::IsNull(_) => 0,
        }
    }
}

/// A value in the Data API's representation, from PostgreSQL's text form.
fn field(type_name: &str, text: Option<&str>) -> Field {
    let Some(text) = text else { return Field::IsNull(true) };
    let string = || Field::StringValue(text.to_string());
    match type_name {
        // VARBYTE prints as hex digits, without PostgreSQL's `\x`.
        "bytea" => Field::StringValue(text.strip_prefix("\\x").unwrap_or(text).to_string()),
        "int2" | "int4" | "int8" | "oid" => text.parse().map_or_else(|_| string(), Field::LongValue),
        "float4" | "float8" => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Field::DoubleValue(v),
            _ => string(),
        },
        "bool" => Field::BooleanValue(text == "t"),
        // Redshift returns SUPER as compact JSON text; PostgreSQL's jsonb output has spaces.
        "json" | "jsonb" => Field::StringValue(compact_json(text)),
        _ => string(),
    }
}

/// `text` (valid JSON) without the whitespace between tokens.
pub(crate) fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Where a result column comes from, when it is a table's column.
struct Origin {
    table_oid: u32,
    column: i16,
    schema: String,
    table: String,
    not_null: bool,
    default: Option<String>,
    type_name: String,
}

/// Column metadata for `statement`'s result, with the table, nullability,
/// default and declared type (`super` rather than `jsonb`) of columns that
/// come straight from a table.
async fn column_metadata(
    client: &Client,
    statement: &Statement,
) -> Result<Vec<ColumnMetadata>, tokio_postgres::Error> {
    let tables: Vec<u32> = statement.columns().iter().filter_map(|c| c.table_oid()).collect();
    let origins: Vec<Origin> = if tables.is_empty() {
        Vec::new()
    } else {
        client
            .query(
                "SELECT a.attrelid, a.attnum, n.nspname, c.relname, a.attnotnull,
                        pg_get_expr(d.adbin, d.adrelid), t.typname
                 FROM pg_attribute a
                 JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_type t ON t.oid = a.atttypid
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = ANY($1) AND a.attnum > 0",
                &[&tables],
            )
            .await?
            .into_iter()
            .map(|r| Origin {
                table_oid: r.get(0),
                column: r.get(1),
                schema: r.get(2),
                table: r.get(3),
                not_null: r.get(4),
                default: r.get(5),
                type_name: r.get(6),
            })
            .collect()
    };
    Ok(statement
        .columns()
        .iter()
        .map(|column| {
            let origin = origins
                .iter()
                .find(|o| Some(o.table_oid) == column.table_oid() && Some(o.column) == column.column_id());
            let base = column.type_().name();
            let modifier = column.type_modifier();
            let (mut precision, scale) = match base {
                "varchar" | "bpchar" if modifier >= 4 => (modifier - 4, 0),
                "numeric" if modifier >= 4 => ((modifier - 4) >> 16, (modifier - 4) & 0xffff),
                "int2" => (5, 0),
                "int4" => (10, 0),
                "int8" => (19, 0),
                "float4" => (8, 0),
                "float8" => (17, 0),
                _ => (0, 0),
            };
            // The byte-counting domains stand for Redshift's own types.
            let domain = origin.and_then(|o| Domain::from_type_name(&o.type_name));
            let type_name = match (domain, origin) {
                (Some(domain), _) => {
                    precision = domain.bytes as i32;
                    domain.redshift_type().to_string()
                }
                (None, Some(o)) => o.type_name.clone(),
                (None, None) => match base {
                    "jsonb" => "super".to_string(),
                    "bytea" => "varbyte".to_string(),
                    other => other.to_string(),
                },
            };
            ColumnMetadata {
                name: column.name().to_string(),
                label: column.name().to_string(),
                type_name,
                column_default: origin.and_then(|o| o.default.clone()),
                is_case_sensitive: matches!(base, "varchar" | "bpchar" | "text" | "name" | "json" | "jsonb"),
                is_currency: base == "money",
                is_signed: matches!(
                    base,
                    "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "money"
                ),
                length: 0,
                nullable: i32::from(!origin.is_some_and(|o| o.not_null)),
                precision,
                scale,
                schema_name: origin.map_or_else(String::new, |o| o.schema.clone()),
                table_name: origin.map_or_else(String::new, |o| o.table.clone()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_json_outside_strings_only() {
        assert_eq!(compact_json(r#"{"a b": [1, 2], "c": "x \" : y"}"#), r#"{"a b":[1,2],"c":"x \" : y"}"#);
        assert_eq!(compact_json(r#""a\\" "#), r#""a\\""#);
    }

    #[test]
    fn types_fields_like_the_data_api() {
        assert_eq!(field("int8", Some("-7")), Field::LongValue(-7));
        assert_eq!(field("float8", Some("1.5")), Field::DoubleValue(1.5));
        assert_eq!(field("float8", Some("NaN")), Field::StringValue("NaN".into()));
        assert_eq!(field("numeric", Some("1.50")), Field::StringValue("1.50".into()));
        assert_eq!(field("bool", Some("f")), Field::BooleanValue(false));
        assert_eq!(field("jsonb", Some(r#"{"a": 1}"#)), Field::StringValue(r#"{"a":1}"#.into()));
        assert_eq!(field("text", None), Field::IsNull(true));
        assert_eq!(serde_json::to_string(&Field::IsNull(true)).unwrap(), r#"{"isNull":true}"#);
    }
}
