//! A change stream nobody tuned for ends in exactly the latest state of every
//! item, and running it again changes nothing.

use sluice::generator::{self, GenOptions, Precision};

use crate::util::{
    count, dump, expected_soft, pipeline, run_ok, scalar, scratch, sluice, stdout, table_state,
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
        // batch boundaries in every position.
        let manifest = pipeline(dir.path(), &g.records, 37, MANIFEST_TABLES);
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
