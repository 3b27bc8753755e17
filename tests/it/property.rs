//! Any permutation of a change stream, with duplicates, cut into any batches
//! and split across two runs, ends in the same sink state as the ordered
//! stream, on every sink. Some changes carry values a sink refuses (a NUL
//! character PostgreSQL's jsonb cannot hold, a string longer than the
//! Redshift sink's SUPER limit): they are dead-lettered whatever the
//! batching, and never take an earlier valid change to their item with them.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use sluice::generator::{self, GenOptions, Precision};
use sluice::guest::GuestRuntime;
use sluice_test_support::{postgres, unique_name};

use crate::export::sluice_s3;
use crate::redshift::Warehouse;
use crate::util::{dump, run_ok, scratch, sluice};

/// Everything that defines an item's stored state; source positions differ
/// between orders of arrival, so they are left out.
const STATE: &str = "SELECT table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, \
    new_image, old_image, is_deleted, is_ttl_delete, change_micros, raw_payload FROM cdc ORDER BY table_name, keys";
const TOMBSTONES: &str =
    "SELECT table_name, keys, change_micros, event_id FROM _sluice_tombstones ORDER BY 1, 2";
/// What was dead-lettered: the records themselves (their origins differ
/// between orders of arrival).
const DEAD: &str = "SELECT DISTINCT raw FROM _sluice_dead_letters ORDER BY 1";

/// One arrival of a stream: the two runs' records, the batch size, the delete mode.
#[derive(Debug, Clone)]
struct Arrival {
    parts: [Vec<String>; 2],
    batch: usize,
    deletes: &'static str,
}

/// A sink's state, as comparable text: rows, tombstones, dead-lettered records.
type State = Vec<Vec<Vec<Option<String>>>>;

/// A stream and two arrivals of it: in order, one record per batch, in one
/// run; and shuffled, with duplicates, in random batches over two runs.
fn arrivals() -> impl Strategy<Value = (Arrival, Arrival)> {
    (any::<u64>(), prop::bool::ANY).prop_flat_map(|(seed, micro)| {
        let g = generator::generate(&GenOptions {
            tables: vec!["orders".into(), "customers".into()],
            items: 6,
            changes: 40,
            seed,
            precision: if micro { Precision::Microsecond } else { Precision::Millisecond },
            duplicates: 0.0,
            reorder: 0,
            deletes: 0.15,
            ttl_deletes: 0.05,
            ..Default::default()
        });
        let ordered = hostile(g.records);
        let n = ordered.len();
        (
            Just(ordered.clone()).prop_shuffle(),
            prop::collection::vec((0..n, 0..n), 0..15),
            1..=12usize,
            0..=n,
            prop::bool::ANY,
            Just(ordered),
        )
            .prop_map(|(shuffled, dups, batch, split, hard, ordered)| {
                let mut arrived = shuffled;
                for (from, to) in dups {
                    let copy = arrived[from].clone();
                    arrived.insert(to.min(arrived.len()), copy);
                }
                let split = split.min(arrived.len());
                let deletes = if hard { "hard" } else { "soft" };
                let reference = Arrival { parts: [ordered, Vec::new()], batch: 1, deletes };
                let second = arrived.split_off(split);
                (reference, Arrival { parts: [arrived, second], batch, deletes })
            })
    })
}

/// Gives about a quarter of the upserts a value that PostgreSQL and the
/// Redshift sink of [`SINKS`] refuse; which ones depends on the event alone.
fn hostile(records: Vec<String>) -> Vec<String> {
    records
        .into_iter()
        .map(|r| {
            let mut v: Value = serde_json::from_str(&r).unwrap();
            let picked = v["eventID"].as_str().unwrap().bytes().map(u32::from).sum::<u32>() % 4 == 0;
            match v["dynamodb"]["NewImage"].as_object_mut() {
                Some(image) if picked => {
                    let junk = format!("nul \u{0} then {}", "x".repeat(80));
                    image.insert("junk".into(), serde_json::json!({ "S": junk }));
                    v.to_string()
                }
                _ => r,
            }
        })
        .collect()
}

/// Writes the stream of a run so far and a manifest reading it into `sink`.
fn manifest(dir: &Path, written: &[String], arrival: &Arrival, sink: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("s.jsonl"), written.join("\n") + "\n").unwrap();
    let manifest = dir.join("p.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"p\"\n[source]\ntype = \"file\"\npath = \"s.jsonl\"\n[sink]\n{sink}\n\
             [batch]\nmax_records = {}\n[defaults]\ntarget = \"cdc\"\ndeletes = \"{}\"\n",
            arrival.batch, arrival.deletes
        ),
    )
    .unwrap();
    manifest
}

/// Runs both parts of an arrival, the second appended to the file the first
/// run read, each with `run`.
fn run_parts(dir: &Path, arrival: &Arrival, sink: &str, mut run: impl FnMut(&Path)) {
    let mut written = Vec::new();
    for part in &arrival.parts {
        written.extend(part.iter().cloned());
        run(&manifest(dir, &written, arrival, sink));
    }
}

/// Runs `cases` pairs of arrivals through `state` and insists both end alike.
fn check(cases: u32, state: impl Fn(&Arrival) -> State) {
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    runner
        .run(&arrivals(), |(reference, arrival)| {
            prop_assert_eq!(state(&arrival), state(&reference));
            Ok(())
        })
        .unwrap();
}

#[test]
fn on_sqlite_any_arrival_converges_to_the_ordered_result() {
    let runtime = RefCell::new(GuestRuntime::with_cache(Some(crate::util::cache_dir())).unwrap());
    check(40, |arrival| {
        let dir = scratch();
        run_parts(dir.path(), arrival, "type = \"sqlite\"\npath = \"p.db\"", |manifest| {
            let plan = sluice::manifest::load(manifest).unwrap();
            sluice::pipeline::run(&plan, &mut runtime.borrow_mut(), &Default::default()).unwrap();
        });
        let db = dir.path().join("p.db");
        vec![dump(&db, STATE), dump(&db, TOMBSTONES), dump(&db, DEAD)]
    });
}

/// The state of schema `schema` in a PostgreSQL database (the PostgreSQL
/// sink's, or the Redshift stand-in's), every value as text.
fn pg_dump(url: &str, schema: &str, raw: &str) -> State {
    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let mut text = |sql: &str| -> Vec<Vec<Option<String>>> {
        let sql = format!("SELECT to_jsonb(q)::text FROM ({sql}) AS q");
        client
            .query(
                &sql.replace("FROM cdc", &format!("FROM {schema}.cdc"))
                    .replace("FROM _sluice", &format!("FROM {schema}._sluice")),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| {
                let v: Value = serde_json::from_str(r.get(0)).unwrap();
                v.as_object().unwrap().values().map(|v| (!v.is_null()).then(|| v.to_string())).collect()
            })
            .collect()
    };
    vec![
        text(STATE),
        text(TOMBSTONES),
        text(&format!("SELECT DISTINCT {raw} AS raw FROM _sluice_dead_letters ORDER BY 1")),
    ]
}

#[test]
fn on_postgres_any_arrival_converges_to_the_ordered_result() {
    let url = postgres::shared().fresh_database("property");
    check(12, |arrival| {
        let schema = unique_name("p");
        let sink = format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"");
        let dir = scratch();
        run_parts(dir.path(), arrival, &sink, |manifest| {
            run_ok(sluice().arg("run").arg(manifest));
        });
        pg_dump(&url, &schema, "convert_from(raw, 'UTF8')")
    });
}

#[test]
fn on_redshift_any_arrival_converges_to_the_ordered_result() {
    let w = Warehouse::new();
    check(8, |arrival| {
        let schema = unique_name("p");
        let sink = w
            .sink("super_max_string_bytes = 64\n")
            .replace("schema = \"cdc\"", &format!("schema = \"{schema}\""));
        let dir = scratch();
        run_parts(dir.path(), arrival, &sink, |manifest| {
            run_ok(w.sluice().arg("run").arg(manifest));
        });
        pg_dump(&w.url, &schema, "convert_from(raw, 'UTF8')")
    });
}

#[test]
fn on_s3_any_arrival_writes_the_same_distinct_changes() {
    check(12, |arrival| {
        let dir = scratch();
        run_parts(dir.path(), arrival, "type = \"s3\"\npath = \"lake\"", |manifest| {
            run_ok(sluice_s3().arg("run").arg(manifest));
        });
        let mut changes = BTreeSet::new();
        for day in std::fs::read_dir(dir.path().join("lake/cdc")).unwrap() {
            for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
                for line in std::fs::read_to_string(file.unwrap().path()).unwrap().lines() {
                    let row: Value = serde_json::from_str(line).unwrap();
                    let field = |name: &str| Some(row[name].to_string());
                    changes.insert(vec![
                        field("event_id"),
                        field("keys"),
                        field("is_deleted"),
                        field("new_image"),
                    ]);
                }
            }
        }
        vec![changes.into_iter().collect()]
    });
}
