//! Junk records never stop a pipeline, on any sink: each is stored if the
//! sink can store it, and otherwise dead-lettered with its raw bytes exactly,
//! its reason and table name made storable (a NUL written out, length cut
//! with a marker). A key as large as DynamoDB allows is stored everywhere.

use std::path::Path;

use sluice_test_support::postgres;

use crate::export::sluice_s3;
use crate::redshift::Warehouse;
use crate::util::{dump, pipeline_into, run_ok, scratch, sluice};

/// A stream record of table `table` with event id `event`, key `key` (a
/// DynamoDB `Keys` object) and new image `image`.
fn change(table: &str, event: &str, name: &str, key: &str, image: &str) -> String {
    format!(
        r#"{{"eventID":"{event}","eventName":"{name}","tableName":"{table}","eventSource":"aws:dynamodb","dynamodb":{{"ApproximateCreationDateTime":1767225600123,"Keys":{key},"NewImage":{image}}}}}"#
    )
}

/// Records as bytes.
type Records = Vec<Vec<u8>>;
/// A dead letter: raw bytes, table name, reason.
type Dead = (Vec<u8>, Option<String>, String);

/// (good records, junk every sink stores or refuses by its own rules, junk no sink can store)
fn corpus() -> (Records, Records, Records) {
    let (pk, sk) = ("p".repeat(2048), "s".repeat(1024));
    let max_key = format!(r#"{{"pk":{{"S":"{pk}"}},"sk":{{"S":"{sk}"}}}}"#);
    let good = vec![
        change(
            "orders",
            "g1",
            "INSERT",
            r#"{"pk":{"S":"a"},"sk":{"S":"1"}}"#,
            r#"{"pk":{"S":"a"},"sk":{"S":"1"}}"#,
        ),
        change("orders", "g2", "INSERT", &max_key, &max_key),
    ];
    let k = r#"{"pk":{"S":"b"},"sk":{"S":"1"}}"#;
    let storable_somewhere = vec![
        // A NUL in an event id: SQLite and S3 keep it; PostgreSQL and Redshift cannot.
        change("orders", r"nul\u0000id", "INSERT", k, k),
        // A NUL in a document: jsonb cannot hold it.
        change(
            "orders",
            "nul-doc",
            "INSERT",
            r#"{"pk":{"S":"c"},"sk":{"S":"1"}}"#,
            r#"{"pk":{"S":"c"},"sk":{"S":"1"},"x":{"S":"a\u0000b"}}"#,
        ),
    ];
    let junk = vec![
        // An unrouted table whose name holds a NUL: the dead letter's own write must not fail.
        change(r"x\u0000y", "e3", "INSERT", k, k).into_bytes(),
        // A 70 KB event name: the reason quoting it is cut.
        change("orders", "e4", &"X".repeat(70_000), k, k).into_bytes(),
        // An unrouted table name far longer than DynamoDB allows.
        change(&"t".repeat(300), "e5", "INSERT", k, k).into_bytes(),
        // Not UTF-8, not JSON; and a megabyte of not JSON.
        b"\xff\xfe not json".to_vec(),
        vec![b'j'; 1 << 20],
    ];
    let bytes = |records: Vec<String>| records.into_iter().map(String::into_bytes).collect::<Vec<_>>();
    (bytes(good), bytes(storable_somewhere), junk)
}

/// Writes the corpus as the file source's lines (bytes, not all UTF-8).
fn manifest(dir: &Path, sink: &str) -> std::path::PathBuf {
    let (good, storable, junk) = corpus();
    let manifest =
        pipeline_into(dir, &[], 10, sink, "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n");
    let mut data = Vec::new();
    for line in good.iter().chain(&storable).chain(&junk) {
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    std::fs::write(dir.join("stream.jsonl"), data).unwrap();
    manifest
}

/// Checks what a sink kept: rows (their event ids) and dead letters (raw
/// bytes, table name, reason).
fn assert_kept(rows: Vec<String>, dead: Vec<Dead>, refuses_nul: bool) {
    let (_, storable, junk) = corpus();
    let mut want_rows = vec!["g1".to_owned(), "g2".to_owned()];
    let mut want_dead = junk;
    if refuses_nul {
        want_dead.extend(storable);
    } else {
        want_rows.extend(["nul\u{0}id".to_owned(), "nul-doc".to_owned()]);
    }
    let mut rows = rows;
    rows.sort();
    want_rows.sort();
    assert_eq!(rows, want_rows);
    for raw in &want_dead {
        assert!(
            dead.iter().any(|(r, _, _)| r == raw),
            "not dead-lettered whole: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
    }
    assert_eq!(dead.len(), want_dead.len());
    for (_, table, reason) in &dead {
        assert!(reason.len() <= 8192 && !reason.contains('\0'), "{reason:?}");
        if let Some(table) = table {
            assert!(table.len() <= 255 && !table.contains('\0'), "{table:?}");
        }
    }
    assert!(dead.iter().any(|(_, t, _)| t.as_deref() == Some(r"x\u0000y")), "the NUL is written out");
}

#[test]
fn junk_never_stops_a_sqlite_pipeline() {
    let dir = scratch();
    run_ok(sluice().arg("run").arg(manifest(dir.path(), "type = \"sqlite\"\npath = \"out.db\"")));
    let db = dir.path().join("out.db");
    let rows =
        dump(&db, "SELECT event_id FROM orders_cdc").into_iter().map(|r| r[0].clone().unwrap()).collect();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("SELECT raw, table_name, reason FROM _sluice_dead_letters").unwrap();
    let dead =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    assert_kept(rows, dead, false);
}

/// Rows' event ids and dead letters in a PostgreSQL schema (the sink's, or
/// the Redshift stand-in's).
fn pg_kept(url: &str, schema: &str) -> (Vec<String>, Vec<Dead>) {
    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let rows = client
        .query(&format!("SELECT event_id FROM {schema}.orders_cdc"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let dead = client
        .query(
            &format!("SELECT raw::bytea, table_name::text, reason::text FROM {schema}._sluice_dead_letters"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    (rows, dead)
}

#[test]
fn junk_never_stops_a_postgres_pipeline() {
    let url = postgres::shared().fresh_database("hostile");
    let dir = scratch();
    run_ok(
        sluice()
            .arg("run")
            .arg(manifest(dir.path(), &format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\""))),
    );
    let (rows, dead) = pg_kept(&url, "cdc");
    assert_kept(rows, dead, true);
}

#[test]
fn junk_never_stops_a_redshift_pipeline() {
    let w = Warehouse::new();
    let dir = scratch();
    run_ok(w.sluice().arg("run").arg(manifest(dir.path(), &w.sink(""))));
    let (rows, dead) = pg_kept(&w.url, "cdc");
    assert_kept(rows, dead, true);
}

#[test]
fn junk_never_stops_an_s3_pipeline() {
    use base64::Engine as _;
    let dir = scratch();
    run_ok(sluice_s3().arg("run").arg(manifest(dir.path(), "type = \"s3\"\npath = \"lake\"")));
    let lines = |folder: &str| -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        for day in std::fs::read_dir(dir.path().join("lake").join(folder)).unwrap() {
            for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
                let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
                lines.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
            }
        }
        lines
    };
    let rows = lines("orders_cdc").iter().map(|r| r["event_id"].as_str().unwrap().to_owned()).collect();
    let dead = lines("_sluice/dead_letters")
        .iter()
        .map(|d| {
            let raw = match d["raw_payload"].as_str() {
                Some(text) => text.as_bytes().to_vec(),
                None => base64::engine::general_purpose::STANDARD
                    .decode(d["raw_base64"].as_str().unwrap())
                    .unwrap(),
            };
            (raw, d["table_name"].as_str().map(str::to_owned), d["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_kept(rows, dead, false);
}
