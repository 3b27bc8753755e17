//! A guest that loops, exhausts its memory, panics or miscounts does not
//! hang or crash the host: only the records that cause it are dead-lettered,
//! with the reason, and everything else is applied.

use std::time::{Duration, Instant};

use sluice::generator::{self, GenOptions};

use crate::util::{count, dump, expected_soft, pipeline, run_ok, scratch, sluice, stdout, table_state};

/// The `ddb-json` guest built with its `test-faults` feature (see host/build.rs).
pub const FAULTY: &str = env!("SLUICE_TEST_FAULTS_WASM");

/// A copy of a real record that tells the test guest to misbehave.
pub fn poisoned(record: &str, fault: &str) -> String {
    let start = record.find(r#""eventID":""#).unwrap() + 11;
    let end = start + record[start..].find('"').unwrap();
    format!("{}sluice-fault:{fault}{}", &record[..start], &record[end..])
}

#[test]
fn a_misbehaving_guest_costs_only_the_records_that_trigger_it() {
    let dir = scratch();
    let g = generator::generate(&GenOptions {
        changes: 600,
        items: 30,
        seed: 31,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let faults = ["loop", "alloc", "panic", "miscount"];
    let mut records = g.records.clone();
    for (i, fault) in faults.iter().enumerate() {
        let at = 50 + i * 137;
        records.insert(at, poisoned(&records[at], fault));
    }
    let tables = format!(
        "[guest]\ntime_budget_ms = 200\nrecord_budget_ms = 200\nmemory_limit_mb = 64\n\
         [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n"
    );
    let manifest = pipeline(dir.path(), &records, 100, &tables);

    let started = Instant::now();
    let summary = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert!(started.elapsed() < Duration::from_secs(120), "isolation took {:?}", started.elapsed());
    assert_eq!(count(&summary, "dead-lettered"), 4, "{summary}");
    assert_eq!(count(&summary, "guest faults"), 4, "a fault is counted apart from a refusal: {summary}");

    let db = dir.path().join("out.db");
    let dead = dump(
        &db,
        "SELECT origin, reason FROM _sluice_dead_letters ORDER BY CAST(substr(origin, 14) AS INTEGER)",
    );
    let reasons: Vec<&str> = dead.iter().map(|r| r[1].as_deref().unwrap()).collect();
    assert!(reasons[0].contains("exceeded its time budget of 200 ms"), "{reasons:?}");
    assert!(reasons[1].contains("exceeded its memory cap of 64 MiB"), "{reasons:?}");
    assert!(
        reasons[2].contains("the test guest was told to panic"),
        "the panic message is kept: {reasons:?}"
    );
    assert!(reasons[3].contains("returned 0 outcomes for 1 records"), "{reasons:?}");
    for (row, (i, _)) in dead.iter().zip(faults.iter().enumerate()) {
        assert_eq!(row[0].as_deref(), Some(format!("stream.jsonl:{}", 51 + i * 137).as_str()));
    }
    // Every other record went through, on fresh instances.
    assert_eq!(table_state(&db, "orders_cdc"), expected_soft(&g.expected, &["orders"]));
}

#[test]
fn guests_see_no_files_environment_or_network() {
    let dir = scratch();
    let g =
        generator::generate(&GenOptions { changes: 5, tables: vec!["orders".into()], ..Default::default() });
    let records = vec![poisoned(&g.records[0], "probe")];
    let tables =
        format!("[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n");
    let manifest = pipeline(dir.path(), &records, 10, &tables);
    run_ok(sluice().arg("run").arg(&manifest).env("SLUICE_SECRET", "hunter2"));
    let reason = dump(&dir.path().join("out.db"), "SELECT reason FROM _sluice_dead_letters");
    let reason = reason[0][0].as_deref().unwrap();
    assert!(reason.starts_with("probe: "), "{reason}");
    assert!(reason.contains("files=Err("), "{reason}");
    assert!(reason.contains("env=0 "), "{reason}");
    assert!(reason.contains("args=0 "), "{reason}");
    assert!(reason.contains("net=Err("), "{reason}");
}

#[test]
fn an_ambiguous_record_or_a_row_for_another_table_is_dead_lettered_not_stamped() {
    let dir = scratch();
    let g =
        generator::generate(&GenOptions { changes: 5, tables: vec!["orders".into()], ..Default::default() });
    // Routed by its first tableName; it must not land as a `users` row in orders_cdc.
    let twice =
        g.records[0].replacen(r#""tableName":"orders""#, r#""tableName":"orders","tableName":"users""#, 1);
    let records = vec![twice, poisoned(&g.records[1], "wrong-table")];
    let tables =
        format!("[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n");
    let manifest = pipeline(dir.path(), &records, 10, &tables);
    run_ok(sluice().arg("run").arg(&manifest));
    let db = dir.path().join("out.db");
    assert!(table_state(&db, "orders_cdc").is_empty());
    let reasons = dump(&db, "SELECT reason FROM _sluice_dead_letters ORDER BY origin");
    let reasons: Vec<&str> = reasons.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert!(reasons[0].contains(r#"duplicate member name "tableName""#), "{reasons:?}");
    assert!(reasons[1].contains(r#"the row is for table "somewhere_else""#), "{reasons:?}");
}

#[test]
fn a_looping_record_costs_one_batch_budget_to_find_and_one_record_budget_to_isolate() {
    let dir = scratch();
    let g = generator::generate(&GenOptions {
        changes: 500,
        items: 100,
        seed: 32,
        duplicates: 0.0,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let mut records = g.records.clone();
    records[250] = poisoned(&records[250], "loop");
    // The default limits: 10 ms per record, at most 5 s per call.
    let tables =
        format!("[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n");
    let manifest = pipeline(dir.path(), &records, 500, &tables);
    let out = run_ok(sluice().arg("run").arg(&manifest).env("SLUICE_LOG", "sluice=info"));
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log.lines().find(|l| l.contains("isolated the records")).unwrap_or_else(|| panic!("{log}"));
    let field = |name: &str| -> u64 {
        let rest = &line[line.find(&format!("{name}=")).unwrap() + name.len() + 1..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    // Halving would spend a call's budget at every level: 2 log2(500) of them.
    assert_eq!(field("timed_out"), 2, "{line}");
    assert_eq!(field("isolated"), 1, "{line}");
    assert_eq!(count(&stdout(&out), "dead-lettered"), 1);
}

/// A guest's time budget counts the time it ran, not the time the machine
/// made it wait: a busy host (here, the process stopped again and again)
/// must not turn valid records into dead letters.
#[test]
fn time_a_busy_machine_takes_from_a_guest_is_not_charged_to_its_budget() {
    let dir = scratch();
    let g = generator::generate(&GenOptions {
        changes: 30,
        items: 30,
        deletes: 0.0,
        ttl_deletes: 0.0,
        duplicates: 0.0,
        tables: vec!["orders".into()],
        ..Default::default()
    });
    // Every record keeps its guest busy for 20 ms of a 100 ms budget.
    let records: Vec<String> = g.records.iter().map(|r| poisoned(r, "spin")).collect();
    let tables = format!(
        "[guest]\nrecord_budget_ms = 100\n\
         [[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\ntransform = \"{FAULTY}\"\n"
    );
    let manifest = pipeline(dir.path(), &records, 1, &tables);

    let mut child = sluice().arg("run").arg(&manifest).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill").args([name, &pid]).status().unwrap();
    };
    // Stopped for 150 ms of every 180 ms: a guest call caught by a stop
    // takes longer than its budget on the wall clock.
    while child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(30));
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(150));
        signal("-CONT");
    }
    let out = child.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    assert_eq!(count(&summary, "guest faults"), 0, "{summary}");
    assert_eq!(count(&summary, "dead-lettered"), 0, "{summary}");
    let db = dir.path().join("out.db");
    assert_eq!(dump(&db, "SELECT keys FROM orders_cdc").len(), g.expected.len());
}
