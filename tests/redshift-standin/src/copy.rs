//! `COPY <table> [(<cols>)] FROM 's3://...' ... FORMAT AS JSON 'auto' [GZIP] [REGION 'r']`,
//! the one statement the stand-in carries out itself: PostgreSQL cannot read
//! S3, so the stand-in checks the bucket's Region, reads the objects and
//! inserts their JSON records.
//!
//! Only the form sluice emits is accepted; any other COPY option fails the
//! statement with a message naming it, rather than being half-emulated.

use std::io::Read;

use anyhow::{Context, bail, ensure};
use aws_sdk_s3::error::DisplayErrorContext;
use serde::de::IgnoredAny;
use tokio_postgres::Client;

use crate::sql::{Token, lex};

/// A parsed COPY from S3.
#[derive(Debug, PartialEq)]
pub(crate) struct CopyFromS3 {
    /// The table as written (quoting kept), to paste into SQL.
    pub table: String,
    /// The column list as written, if there is one.
    pub columns: Option<Vec<String>>,
    pub bucket: String,
    pub prefix: String,
    pub gzip: bool,
    /// `REGION 'x'`: where the bucket is, when not in the cluster's Region.
    pub region: Option<String>,
}

/// "The maximum size of a single JSON object or array, including braces or
/// brackets, is 4 MB": read as 4,000,000 bytes, the strictest reading.
const MAX_JSON_OBJECT_BYTES: usize = 4_000_000;

/// `Some` if `sql` is a COPY from an `s3://` path (`Err` if it uses options
/// the stand-in does not implement); `None` for every other statement.
pub(crate) fn parse(sql: &str) -> Option<anyhow::Result<CopyFromS3>> {
    let tokens: Vec<Token> = lex(sql).into_iter().map(|s| s.token).collect();
    let is_word = |t: Option<&Token>, w: &str| matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    if !is_word(tokens.first(), "copy") {
        return None;
    }
    let from = tokens.iter().position(|t| is_word(Some(t), "from"))?;
    match tokens.get(from + 1) {
        Some(Token::Str(path)) if path.starts_with("s3://") => Some(parse_tokens(&tokens, from, path)),
        _ => None,
    }
}

/// `tokens[from]` is FROM and `path` the literal after it.
fn parse_tokens(tokens: &[Token], from: usize, path: &str) -> anyhow::Result<CopyFromS3> {
    let head = &tokens[1..from];
    let paren = head.iter().position(|t| *t == Token::Symbol('('));
    let table = identifier_text(&head[..paren.unwrap_or(head.len())])?;
    let columns = match paren {
        None => None,
        Some(open) => {
            ensure!(head.last() == Some(&Token::Symbol(')')), "COPY: the column list is not closed");
            let inside = &head[open + 1..head.len() - 1];
            Some(
                inside
                    .split(|t| *t == Token::Symbol(','))
                    .map(identifier_text)
                    .collect::<anyhow::Result<_>>()?,
            )
        }
    };
    let (bucket, prefix) = path["s3://".len()..].split_once('/').unwrap_or((&path["s3://".len()..], ""));
    ensure!(!bucket.is_empty(), "COPY: no bucket in '{path}'");

    let mut gzip = false;
    let mut region = None;
    let mut json_auto = false;
    let mut rest = tokens[from + 2..].iter().peekable();
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.to_ascii_uppercase()),
        _ => None,
    };
    while let Some(token) = rest.next() {
        let option = match token {
            Token::Symbol(';') => continue,
            t => word(t).with_context(|| format!("COPY: unexpected {t:?} among the options"))?,
        };
        // `AS` may follow most options; it changes nothing.
        if rest.peek().and_then(|t| word(t)).as_deref() == Some("AS") {
            rest.next();
        }
        match option.as_str() {
            "GZIP" => gzip = true,
            "IAM_ROLE" => match rest.next() {
                Some(Token::Str(_)) => {}
                Some(t) if word(t).as_deref() == Some("DEFAULT") => {}
                other => bail!("COPY: IAM_ROLE needs 'arn' or default, found {other:?}"),
            },
            "REGION" => match rest.next() {
                Some(Token::Str(name)) => region = Some(name.clone()),
                other => bail!("COPY: REGION needs a quoted Region, found {other:?}"),
            },
            // The stand-in parses times as PostgreSQL does, whatever the format says.
            "TIMEFORMAT" | "DATEFORMAT" => match rest.next() {
                Some(Token::Str(_)) => {}
                other => bail!("COPY: {option} needs a quoted value, found {other:?}"),
            },
            "FORMAT" => {
                let json = rest.next().and_then(word);
                ensure!(json.as_deref() == Some("JSON"), "COPY: the stand-in loads only FORMAT AS JSON");
                json_auto = json_option(&mut rest)?;
            }
            "JSON" => json_auto = json_option(&mut rest)?,
            other => bail!("COPY: the Redshift stand-in does not implement the option {other}"),
        }
    }
    ensure!(json_auto, "COPY: the Redshift stand-in loads only FORMAT AS JSON 'auto'");
    Ok(CopyFromS3 { table, columns, bucket: bucket.to_string(), prefix: prefix.to_string(), gzip, region })
}

/// After `JSON [AS]`: the `'auto'` option, the only one the stand-in implements.
fn json_option<'a>(rest: &mut std::iter::Peekable<impl Iterator<Item = &'a Token>>) -> anyhow::Result<bool> {
    if matches!(rest.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("as")) {
        rest.next();
    }
    match rest.next() {
        Some(Token::Str(option)) if option.eq_ignore_ascii_case("auto") => Ok(true),
        other => bail!("COPY: the Redshift stand-in implements only JSON 'auto', not {other:?}"),
    }
}

/// A possibly qualified name (`schema.table`, `"Quoted"`), as SQL text.
fn identifier_text(tokens: &[Token]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (i, token) in tokens.iter().enumerate() {
        match (i % 2, token) {
            (0, Token::Word(w)) => text.push_str(w),
            (0, Token::Quoted(q)) => text.push_str(&format!("\"{}\"", q.replace('"', "\"\""))),
            (1, Token::Symbol('.')) => text.push('.'),
            _ => bail!("COPY: cannot read a table or column name from {tokens:?}"),
        }
    }
    ensure!(!text.is_empty() && !text.ends_with('.'), "COPY: a table or column name is missing");
    Ok(text)
}

/// Loads every object under the prefix into the table through `client`,
/// in whatever transaction it is in; returns the number of rows loaded.
/// `cluster_region` is the Region the bucket must be in without `REGION`.
pub(crate) async fn load(
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    cluster_region: &str,
    copy: &CopyFromS3,
) -> anyhow::Result<u64> {
    let s3 = s3.context("COPY from S3: the stand-in was started without an S3 endpoint")?;
    check_region(s3, cluster_region, copy).await?;
    refuse_varbyte_columns(client, copy).await?;
    let mut records = Vec::new();
    for key in list(s3, copy).await? {
        let object = s3
            .get_object()
            .bucket(&copy.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("S3ServiceException: {}", DisplayErrorContext(e)))
            .with_context(|| format!("reading s3://{}/{key}", copy.bucket))?;
        let bytes =
            object.body.collect().await.with_context(|| format!("reading s3://{}/{key}", copy.bucket))?;
        let text = if copy.gzip {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(bytes.into_bytes().as_ref())
                .read_to_string(&mut text)
                .with_context(|| format!("gunzip of s3://{}/{key}", copy.bucket))?;
            text
        } else {
            String::from_utf8(bytes.into_bytes().to_vec())
                .with_context(|| format!("s3://{}/{key} is not UTF-8", copy.bucket))?
        };
        split_records(&text, &mut records).with_context(|| format!("in s3://{}/{key}", copy.bucket))?;
    }
    // PostgreSQL parses the records, so numbers keep every digit.
    let array = format!("[{}]", records.join(","));
    let sql = match &copy.columns {
        Some(columns) => {
            let list = columns.join(", ");
            format!(
                "INSERT INTO {table} ({list}) SELECT {list} FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb)",
                table = copy.table
            )
        }
        None => format!(
            "INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb)",
            table = copy.table
        ),
    };
    client.execute(&sql, &[&array]).await.map_err(|e| anyhow::anyhow!(crate::engine::error_text(&e)))
}

/// Redshift reads the bucket in the cluster's Region unless `REGION` names
/// another; S3 answers a request to the wrong Region with a redirect.
async fn check_region(
    s3: &aws_sdk_s3::Client,
    cluster_region: &str,
    copy: &CopyFromS3,
) -> anyhow::Result<()> {
    let location = s3
        .get_bucket_location()
        .bucket(&copy.bucket)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("S3ServiceException: {}", DisplayErrorContext(e)))
        .with_context(|| format!("finding the Region of bucket '{}'", copy.bucket))?;
    // No constraint is us-east-1; EU is S3's old name for eu-west-1.
    let bucket_region = match location.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(other) => other,
    };
    let (addressed, how) = match &copy.region {
        Some(region) => (region.as_str(), format!("COPY's REGION is '{region}'")),
        None => (cluster_region, format!("the cluster is in {cluster_region} and COPY gives no REGION")),
    };
    ensure!(
        addressed == bucket_region,
        "S3ServiceException:The bucket you are attempting to access must be addressed using the specified \
         endpoint. Please send all future requests to this endpoint.,Status 301,Error PermanentRedirect \
         (bucket '{}' is in {bucket_region}; {how})",
        copy.bucket
    );
    Ok(())
}

/// JSON 'auto' into a VARBYTE column is not emulated: PostgreSQL would read
/// the JSON string as bytea input, which is not what Redshift loads.
async fn refuse_varbyte_columns(client: &Client, copy: &CopyFromS3) -> anyhow::Result<()> {
    let rows = client
        .query(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            &[&copy.table],
        )
        .await
        .map_err(|e| anyhow::anyhow!(crate::engine::error_text(&e)))?;
    let loaded = |name: &str| {
        copy.columns.as_ref().is_none_or(|columns| columns.iter().any(|c| column_name(c) == name))
    };
    for row in rows {
        let (name, type_name): (String, String) = (row.get(0), row.get(1));
        let varbyte = type_name == "bytea"
            || crate::ddl::Domain::from_type_name(&type_name)
                .is_some_and(|d| d.kind == crate::ddl::Kind::Varbyte);
        ensure!(
            !(varbyte && loaded(&name)),
            "COPY: the Redshift stand-in does not emulate loading the VARBYTE column {name} from JSON"
        );
    }
    Ok(())
}

/// A column name as the catalog holds it: quoted as written, else lower case.
fn column_name(written: &str) -> String {
    match written.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => written.to_lowercase(),
    }
}

/// The keys under the COPY's prefix: Redshift loads every object whose key
/// starts with the path.
async fn list(s3: &aws_sdk_s3::Client, copy: &CopyFromS3) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(&copy.bucket).prefix(&copy.prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::anyhow!("S3ServiceException: {}", DisplayErrorContext(e)))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    ensure!(
        !keys.is_empty(),
        "The specified S3 prefix '{}' does not exist (bucket '{}')",
        copy.prefix,
        copy.bucket
    );
    Ok(keys)
}

/// Appends each JSON value of `text` to `records`, as written. Values may be
/// separated by any whitespace, one per line in sluice's files.
fn split_records(text: &str, records: &mut Vec<String>) -> anyhow::Result<()> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
    let mut start = 0;
    while let Some(value) = values.next() {
        value.context("invalid JSON")?;
        let end = values.byte_offset();
        let record = text[start..end].trim();
        ensure!(record.starts_with('{'), "JSON 'auto' loads objects, found {record:.40}");
        ensure!(
            record.len() <= MAX_JSON_OBJECT_BYTES,
            "a JSON object of {} bytes: COPY loads JSON objects of at most 4 MB \
             (the stand-in allows {MAX_JSON_OBJECT_BYTES} bytes)",
            record.len()
        );
        records.push(record.to_string());
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_form_sluice_emits() {
        let sql = "copy  public.items (pk, \"New_Image\", n)\n FROM 's3://bkt/runs/7/part-' \
                   IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS JSON 'auto' TIMEFORMAT 'auto' GZIP;";
        let copy = parse(sql).unwrap().unwrap();
        assert_eq!(
            copy,
            CopyFromS3 {
                table: "public.items".into(),
                columns: Some(vec!["pk".into(), "\"New_Image\"".into(), "n".into()]),
                bucket: "bkt".into(),
                prefix: "runs/7/part-".into(),
                gzip: true,
                region: None,
            }
        );
        let plain = parse("COPY t FROM 's3://b/k' IAM_ROLE default JSON 'auto' REGION AS 'eu-west-1'")
            .unwrap()
            .unwrap();
        assert_eq!((plain.columns, plain.gzip, plain.region.as_deref()), (None, false, Some("eu-west-1")));
    }

    #[test]
    fn other_copies_are_left_to_postgres_or_refused() {
        assert!(parse("COPY t FROM STDIN").is_none());
        assert!(parse("SELECT 'COPY t FROM s3://x'").is_none());
        let err = parse("COPY t FROM 's3://b/k' IAM_ROLE default CSV").unwrap().unwrap_err();
        assert!(err.to_string().contains("CSV"), "{err}");
        let err = parse("COPY t FROM 's3://b/k' FORMAT AS JSON 's3://b/paths.json'").unwrap().unwrap_err();
        assert!(err.to_string().contains("'auto'"), "{err}");
    }

    #[test]
    fn splits_records_and_keeps_their_text() {
        let mut records = Vec::new();
        split_records("{\"n\": 1e400}\n\n{\"s\": \"a\\nb\"} {\"x\":[]}\n", &mut records).unwrap();
        assert_eq!(records, ["{\"n\": 1e400}", "{\"s\": \"a\\nb\"}", "{\"x\":[]}"]);
        assert!(split_records("{\"a\": 1}\n[1]", &mut Vec::new()).is_err());
        assert!(split_records("{\"a\": ", &mut Vec::new()).is_err());
        let big = format!("{{\"s\": \"{}\"}}", "x".repeat(MAX_JSON_OBJECT_BYTES - 9));
        assert_eq!(big.len(), MAX_JSON_OBJECT_BYTES);
        split_records(&big, &mut Vec::new()).unwrap();
        let over = format!("{{\"s\": \"{}\"}}", "x".repeat(MAX_JSON_OBJECT_BYTES - 8));
        assert!(split_records(&over, &mut Vec::new()).unwrap_err().to_string().contains("4 MB"));
    }
}
