//! A change stream nobody tuned for ends in exactly the latest state of every
//! item, and running it again changes nothing.

use sluice::generator::{self, GenOptions, Precision};

use crate::util::{
    ONE_BATCH_A_COMMIT, count, dump, expected_soft, pipeline, run_ok, scalar, scratch, sluice, stdout,
    table_state,
};

const MANIFEST_TABLES: &str = "\
[[tables]]
source = \"orders\"
target = \"orders_cdc\"

[[tables]]
source = \"customers\"
target = \"customers_cdc\"

[defaults]
target = \"other_cdc\"
deletes = \"hard\"
";

fn stream(seed: u64, precision: Precision) -> generator::Generated {
    generator::generate(&GenOptions {
        changes: 3000,
        items: 60,
        seed,
        precision,
        reorder: 40,
        duplicates: 0.1,
        ..Default::default()
    })
}

#[test]
fn every_item_ends_in_its_latest_state_despite_duplicates_and_reordering() {
    for (seed, precision) in [(7, Precision::Millisecond), (8, Precision::Microsecond)] {
        let dir = scratch();
        let g = stream(seed, precision);
        // 37 is prime against the reordering window, so late records cross
        // batch boundaries in every position; each batch is its own
        // transaction, so they reach the sink instead of merging away.
        let tables = format!("{ONE_BATCH_A_COMMIT}{MANIFEST_TABLES}");
        let manifest = pipeline(dir.path(), &g.records, 37, &tables);
        let out = run_ok(sluice().arg("run").arg(&manifest));
        let summary = stdout(&out);
        assert_eq!(count(&summary, "records read"), g.records.len() as u64);
        assert_eq!(count(&summary, "dead-lettered"), 0);
        assert!(count(&summary, "stale, not applied") > 0, "late records must reach the sink: {summary}");

        let db = dir.path().join("out.db");
        assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
        assert_eq!(table_state(&db, "customers_cdc"), expected_soft(&g.expected, &["customers"]));

        // Hard deletes: deleted items are gone, each leaving a tombstone.
        let devices = expected_soft(&g.expected, &["devices"]);
        let live: Vec<_> = devices.iter().filter(|i| !i.deleted).cloned().collect();
        assert_eq!(table_state(&db, "other_cdc"), live);
        let tombstones = scalar(&db, "SELECT count(*) FROM _sluice_tombstones WHERE target = 'other_cdc'");
        assert_eq!(tombstones as usize, devices.len() - live.len());
        assert!(tombstones > 0);
    }
}

#[test]
fn a_second_run_reads_nothing_and_changes_nothing() {
    let dir = scratch();
    let g = stream(9, Precision::Millisecond);
    let manifest = pipeline(dir.path(), &g.records, 100, MANIFEST_TABLES);
    let db = dir.path().join("out.db");
    run_ok(sluice().arg("run").arg(&manifest));
    let before = dump(&db, "SELECT * FROM orders_cdc ORDER BY keys");

    let again = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&again, "records read"), 0, "{again}");
    assert_eq!(dump(&db, "SELECT * FROM orders_cdc ORDER BY keys"), before);
}

#[test]
fn replaying_the_whole_stream_from_scratch_changes_nothing() {
    let dir = scratch();
    let g = stream(10, Precision::Microsecond);
    let manifest = pipeline(dir.path(), &g.records, 64, MANIFEST_TABLES);
    let db = dir.path().join("out.db");
    run_ok(sluice().arg("run").arg(&manifest));
    let tables = ["orders_cdc", "customers_cdc", "other_cdc", "_sluice_tombstones"];
    let before: Vec<_> =
        tables.iter().map(|t| dump(&db, &format!("SELECT * FROM {t} ORDER BY 1, 2, 3"))).collect();

    // Forget the checkpoint: every record arrives a second time.
    rusqlite::Connection::open(&db).unwrap().execute("DELETE FROM _sluice_checkpoints", []).unwrap();
    let replay = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&replay, "records read"), g.records.len() as u64);
    let after: Vec<_> =
        tables.iter().map(|t| dump(&db, &format!("SELECT * FROM {t} ORDER BY 1, 2, 3"))).collect();
    assert_eq!(after, before);
}

#[test]
fn an_older_change_cannot_bring_back_a_hard_deleted_item() {
    let dir = scratch();
    let rec = |event: &str, ts: u64, id: &str| {
        let image = if event == "REMOVE" { "\"OldImage\"" } else { "\"NewImage\"" };
        format!(
            r#"{{"eventID":"{id}","eventName":"{event}","tableName":"t","dynamodb":{{"ApproximateCreationDateTime":{ts},"Keys":{{"k":{{"S":"a"}}}},{image}:{{"k":{{"S":"a"}},"v":{{"N":"{ts}"}}}}}}}}"#
        )
    };
    let first = [rec("INSERT", 1000, "e1"), rec("REMOVE", 3000, "e3")];
    let extra = "[[tables]]\nsource = \"t\"\ntarget = \"t_cdc\"\ndeletes = \"hard\"\n";
    let manifest = pipeline(dir.path(), &first, 10, extra);
    run_ok(sluice().arg("run").arg(&manifest));
    let db = dir.path().join("out.db");
    assert!(table_state(&db, "t_cdc").is_empty());

    // A late MODIFY from before the delete, then a real re-insert after it.
    let late = [first[0].clone(), first[1].clone(), rec("MODIFY", 2000, "e2")];
    let manifest = pipeline(dir.path(), &late, 10, extra);
    let summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&summary, "stale, not applied"), 1, "{summary}");
    assert!(table_state(&db, "t_cdc").is_empty());

    let reinsert = [late[0].clone(), late[1].clone(), late[2].clone(), rec("INSERT", 4000, "e4")];
    let manifest = pipeline(dir.path(), &reinsert, 10, extra);
    run_ok(sluice().arg("run").arg(&manifest));
    let rows = table_state(&db, "t_cdc");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event_id, "e4");
    assert_eq!(scalar(&db, "SELECT count(*) FROM _sluice_tombstones"), 0);
}

#[test]
fn records_of_unrouted_tables_are_dead_lettered_with_the_reason() {
    let dir = scratch();
    let g = stream(11, Precision::Millisecond);
    let manifest =
        pipeline(dir.path(), &g.records, 200, "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n");
    let summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    let unrouted = g.records.iter().filter(|r| !r.contains(r#""tableName":"orders""#)).count();
    assert_eq!(count(&summary, "dead-lettered"), unrouted as u64);
    let db = dir.path().join("out.db");
    let reasons = dump(&db, "SELECT DISTINCT table_name, reason FROM _sluice_dead_letters ORDER BY 1");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0][1]
            .as_deref()
            .unwrap()
            .contains("has no [[tables]] entry and the manifest has no [defaults]")
    );
    // The raw bytes are kept, so nothing is lost.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM _sluice_dead_letters WHERE raw_size_bytes = length(raw) AND raw_size_bytes > 0"
        ),
        unrouted as i64
    );
    assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
}

/// Changes to one item within one millisecond: `a` inserts it, `b` modifies
/// it. Copies of `a` delivered again come later, with larger sequence
/// numbers (line numbers here), but are the same change.
fn same_millisecond(events: &[&str]) -> Vec<String> {
    events
        .iter()
        .map(|id| {
            let (name, v) = if *id == "a" { ("INSERT", 1) } else { ("MODIFY", 2) };
            format!(
                r#"{{"eventID":"{id}","eventName":"{name}","tableName":"orders","eventSource":"aws:dynamodb","dynamodb":{{"ApproximateCreationDateTime":1767225600123,"Keys":{{"id":{{"S":"k"}}}},"NewImage":{{"id":{{"S":"k"}},"v":{{"N":"{v}"}}}},"SizeBytes":10}}}}"#
            )
        })
        .collect()
}

#[test]
fn a_change_delivered_again_changes_nothing_on_every_sink() {
    let w = crate::redshift::Warehouse::new();
    let url = sluice_test_support::postgres::shared().fresh_database("again");
    // (events, batch size, the stored event and where it came from)
    let cases = [
        // Its copy is not applied again: the row keeps its first delivery.
        (&["a", "a"][..], 1, "a", "stream.jsonl:1"),
        // In one batch, copies count by their first delivery, so b stays newer.
        (&["a", "a", "b", "a"][..], 10, "b", "stream.jsonl:3"),
    ];
    for (n, (events, batch, event, origin)) in cases.into_iter().enumerate() {
        let sinks = [
            ("type = \"sqlite\"\npath = \"out.db\"".to_owned(), None),
            (
                format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"p{n}\""),
                Some((&url, format!("p{n}"))),
            ),
            (
                w.sink("").replace("schema = \"cdc\"", &format!("schema = \"r{n}\"")),
                Some((&w.url, format!("r{n}"))),
            ),
        ];
        for (sink, database) in sinks {
            let dir = scratch();
            let tables = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n";
            let manifest =
                crate::util::pipeline_into(dir.path(), &same_millisecond(events), batch, &sink, tables);
            let out = run_ok(w.sluice().arg("run").arg(&manifest));
            let log = String::from_utf8_lossy(&out.stderr);
            assert_eq!(log.matches("in milliseconds").count(), 1, "warned once: {log}");
            let state = match database {
                None => dump(&dir.path().join("out.db"), "SELECT event_id, source_position FROM orders_cdc"),
                Some((url, schema)) => {
                    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                    client
                        .query(&format!("SELECT event_id, source_position FROM {schema}.orders_cdc"), &[])
                        .unwrap()
                        .iter()
                        .map(|r| vec![r.get(0), r.get(1)])
                        .collect()
                }
            };
            assert_eq!(
                state,
                vec![vec![Some(event.to_owned()), Some(origin.to_owned())]],
                "{events:?} into {sink}"
            );
        }
    }
}

#[test]
fn microsecond_streams_are_not_warned_about() {
    let dir = scratch();
    let g = stream(9, Precision::Microsecond);
    let out = run_ok(
        sluice()
            .arg("run")
            .arg(pipeline(dir.path(), &g.records, 100, MANIFEST_TABLES))
            .env("SLUICE_LOG", "sluice=warn"),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("in milliseconds"), "{log}");
}
