//! `sluice replay` after a transform changed: it rewrites the rows earlier
//! runs committed with what the transform makes now, up to the committed
//! positions and no further, and leaves the positions to the next run; a
//! run that finds a table's transform changed says so.

use std::time::{Duration, UNIX_EPOCH};

use sluice::generator::{self, GenOptions};

use crate::redshift::Warehouse;
use crate::util::{
    POSITIONS_ONLY, count, dump, expected_soft, pg_state, pipeline, pipeline_into, run_ok, scalar, scratch,
    sluice, stdout, table_state,
};

/// The `ddb-json` guest built for tests: a setting `tag` adds a column `tag`
/// to every row, so its output changes with its settings.
const TAGGING: &str = env!("SLUICE_TEST_FAULTS_WASM");

/// `orders` through the tagging guest (tagging with `tag`, if given) and
/// `customers` through the built-in.
fn tables(tag: Option<&str>, orders_deletes: &str) -> String {
    let settings = tag.map(|t| format!("[tables.settings]\ntag = \"{t}\"\n")).unwrap_or_default();
    format!(
        "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{TAGGING}\"\n\
         deletes = \"{orders_deletes}\"\n{settings}\
         [[tables]]\nsource = \"customers\"\ntarget = \"customers_cdc\"\n"
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CHANGED: &str = "transform (its component, keys or settings) changed";

#[test]
fn replay_rewrites_rows_an_older_transform_made_up_to_the_committed_positions() {
    let dir = scratch();
    let db = dir.path().join("out.db");
    let g = generator::generate(&GenOptions {
        changes: 400,
        items: 40,
        seed: 5,
        tables: vec!["orders".into(), "customers".into()],
        ..Default::default()
    });
    let (first, rest) = g.records.split_at(g.records.len() / 2);
    let manifest = pipeline(dir.path(), first, 50, &tables(None, "soft"));
    run_ok(sluice().arg("run").arg(&manifest));
    let positions = format!("SELECT stream, position FROM _sluice_checkpoints WHERE {POSITIONS_ONLY}");
    let committed = dump(&db, &positions);
    let (orders, customers) = (table_state(&db, "orders_cdc"), table_state(&db, "customers_cdc"));

    // The transform's settings change, and more changes arrive, unread.
    pipeline(dir.path(), &g.records, 50, &tables(Some("v2"), "soft"));
    let out = run_ok(sluice().args(["replay", "--table", "orders"]).arg(&manifest));
    let summary = stdout(&out);
    assert!(count(&summary, "rows upserted") > 0, "{summary}");
    assert!(count(&summary, "not replayed") >= rest.len() as u64, "{summary}");
    assert!(!stderr(&out).contains(CHANGED), "a replay does not warn of what it rewrites");
    assert_eq!(dump(&db, &positions), committed, "a replay commits no position");
    assert_eq!(
        table_state(&db, "orders_cdc"),
        orders,
        "same items, same changes, nothing past the checkpoint"
    );
    assert_eq!(table_state(&db, "customers_cdc"), customers);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM orders_cdc WHERE tag IS NOT 'v2'"),
        0,
        "every row rewritten"
    );
    assert!(scalar(&db, "SELECT count(*) FROM orders_cdc") > 0);

    // The next run reads what the last run left, once, and does not warn:
    // the replay stored the transform it rewrote with.
    let out = run_ok(sluice().arg("run").arg(&manifest));
    assert_eq!(count(&stdout(&out), "records read"), rest.len() as u64);
    assert!(!stderr(&out).contains(CHANGED), "{}", stderr(&out));
    assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
    assert_eq!(table_state(&db, "customers_cdc"), expected_soft(&g.expected, &["customers"]));
    assert_eq!(scalar(&db, "SELECT count(*) FROM orders_cdc WHERE tag IS NOT 'v2'"), 0);

    // A run that finds the transform changed again says so, for that table only.
    pipeline(dir.path(), &g.records, 50, &tables(Some("v3"), "soft"));
    let warned = stderr(&run_ok(sluice().arg("run").arg(&manifest)));
    assert!(warned.contains(CHANGED) && warned.contains("--table orders"), "{warned}");
    assert!(!warned.contains("customers"), "{warned}");
}

#[test]
fn replay_from_a_time_rewrites_only_the_changes_made_since() {
    let dir = scratch();
    let db = dir.path().join("out.db");
    let g = generator::generate(&GenOptions {
        changes: 300,
        items: 60,
        seed: 9,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let manifest = pipeline(dir.path(), &g.records, 40, &tables(None, "soft"));
    run_ok(sluice().arg("run").arg(&manifest));
    let before = table_state(&db, "orders_cdc");

    let mut times: Vec<u64> = g
        .records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            v["dynamodb"]["ApproximateCreationDateTime"].as_u64().unwrap()
        })
        .collect();
    times.sort();
    let from_ms = times[times.len() / 2];
    let from = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(from_ms)).to_string();

    pipeline(dir.path(), &g.records, 40, &tables(Some("v2"), "soft"));
    run_ok(sluice().args(["replay", "--from", &from]).arg(&manifest));
    assert_eq!(table_state(&db, "orders_cdc"), before);
    let micros = from_ms * 1000;
    let tagged = scalar(&db, "SELECT count(*) FROM orders_cdc WHERE tag = 'v2'");
    let since = scalar(&db, &format!("SELECT count(*) FROM orders_cdc WHERE change_micros >= {micros}"));
    let wrong = scalar(
        &db,
        &format!("SELECT count(*) FROM orders_cdc WHERE (change_micros >= {micros}) <> (tag IS 'v2')"),
    );
    assert_eq!(wrong, 0, "rows of changes since {from} are rewritten, and only those");
    assert!(tagged > 0 && tagged < before.len() as i64, "{tagged} of {} rows", before.len());
    assert_eq!(tagged, since);
}

/// PostgreSQL and Redshift apply rows as sets, each with its own guard: a
/// replay rewrites there too, hard-deleted items stay deleted, and nothing
/// else changes.
#[test]
fn replay_rewrites_rows_in_postgres_and_redshift() {
    let g = generator::generate(&GenOptions {
        changes: 400,
        items: 40,
        seed: 11,
        tables: vec!["orders".into(), "customers".into()],
        ..Default::default()
    });
    let warehouse = Warehouse::new();
    let postgres = sluice_test_support::postgres::shared().fresh_database("replay");
    let sinks = [
        ("redshift", warehouse.sink(""), warehouse.url.clone()),
        (
            "postgres",
            format!("type = \"postgres\"\nurl = \"{postgres}\"\nschema = \"cdc\""),
            postgres.clone(),
        ),
    ];
    for (name, sink, url) in sinks {
        let dir = scratch();
        let sluice = || if name == "redshift" { warehouse.sluice() } else { sluice() };
        let manifest = pipeline_into(dir.path(), &g.records, 50, &sink, &tables(None, "hard"));
        run_ok(sluice().arg("run").arg(&manifest));
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let tombstones = "SELECT count(*) FROM cdc._sluice_tombstones";
        let before =
            (pg_state(&url, "orders_cdc"), client.query_one(tombstones, &[]).unwrap().get::<_, i64>(0));

        pipeline_into(dir.path(), &g.records, 50, &sink, &tables(Some("v2"), "hard"));
        let summary = stdout(&run_ok(sluice().args(["replay", "--table", "orders"]).arg(&manifest)));
        assert!(count(&summary, "rows upserted") > 0, "{name}: {summary}");
        let after =
            (pg_state(&url, "orders_cdc"), client.query_one(tombstones, &[]).unwrap().get::<_, i64>(0));
        assert_eq!(after, before, "{name}");
        let untagged: i64 = client
            .query_one("SELECT count(*) FROM cdc.orders_cdc WHERE tag IS DISTINCT FROM 'v2'", &[])
            .unwrap()
            .get(0);
        assert_eq!(untagged, 0, "{name}: every row rewritten");
        let again = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
        assert_eq!(count(&again, "records read"), 0, "{name}: the run resumes where it stopped");
    }
}

#[test]
fn replay_refuses_a_sink_of_change_files_and_a_table_the_manifest_does_not_route() {
    let dir = scratch();
    let g =
        generator::generate(&GenOptions { changes: 20, tables: vec!["orders".into()], ..Default::default() });
    let lake =
        pipeline_into(dir.path(), &g.records, 10, "type = \"s3\"\npath = \"lake\"", &tables(None, "soft"));
    let out = sluice().arg("replay").arg(&lake).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot rewrite a row in place"), "{}", stderr(&out));
    assert!(!dir.path().join("lake").exists(), "refused before the sink is touched");

    let manifest = pipeline(dir.path(), &g.records, 10, &tables(None, "soft"));
    let out = sluice().args(["replay", "--table", "nosuch"]).arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--table nosuch: the manifest has no [[tables]] entry"),
        "{}",
        stderr(&out)
    );

    let out = sluice().args(["replay", "--from", "yesterday"]).arg(&manifest).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("give \"start\" or a time"), "{}", stderr(&out));
}
