//! A run killed mid-batch or between batches resumes exactly after the last
//! commit: nothing is lost and nothing is applied twice.
//!
//! The crashes are real: the `FAILPOINTS` variable makes the process abort
//! (no unwinding, no cleanup) at a named point in the sink.

use sluice::generator::{self, GenOptions};

use crate::util::{
    ONE_BATCH_A_COMMIT, POSITIONS_ONLY, count, dump, expected_soft, pipeline, run_ok, scalar, scratch,
    sluice, stdout, table_state,
};

const TABLES: &str = "[defaults]\ntarget = \"cdc\"\n";
const BATCH: usize = 50;

fn crash_and_resume(failpoint: &str, committed_batches: usize) {
    let dir = scratch();
    let g = generator::generate(&GenOptions { changes: 1500, items: 40, seed: 21, ..Default::default() });
    // Crash points are counted in commits: one batch each.
    let tables = format!("{ONE_BATCH_A_COMMIT}{TABLES}");
    let manifest = pipeline(dir.path(), &g.records, BATCH, &tables);
    let db = dir.path().join("out.db");

    let crashed = sluice().arg("run").arg(&manifest).env("FAILPOINTS", failpoint).output().unwrap();
    assert!(!crashed.status.success(), "the run should have crashed at {failpoint}");
    let committed_lines = (committed_batches * BATCH) as i64;
    let position = dump(&db, &format!("SELECT position FROM _sluice_checkpoints WHERE {POSITIONS_ONLY}"));
    let expected: Vec<Vec<Option<String>>> = match committed_batches {
        0 => vec![],
        _ => vec![vec![Some(format!(
            r#"{{"offset":{},"line":{committed_lines}}}"#,
            offset_after(&g.records, committed_lines)
        ))]],
    };
    assert_eq!(position, expected);
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT source_position) > 0 FROM cdc"),
        i64::from(committed_batches > 0)
    );

    // The rerun reads exactly what was not committed, and ends as a clean run would.
    let resumed = stdout(&run_ok(sluice().arg("run").arg(&manifest)));
    assert_eq!(count(&resumed, "records read"), g.records.len() as u64 - committed_lines as u64, "{resumed}");
    assert_eq!(table_state(&db, "cdc"), expected_soft(&g.expected, &["orders", "customers", "devices"]));

    let clean = scratch();
    let manifest = pipeline(clean.path(), &g.records, BATCH, TABLES);
    run_ok(sluice().arg("run").arg(&manifest));
    let all = "SELECT * FROM cdc ORDER BY table_name, keys";
    assert_eq!(dump(&db, all), dump(&clean.path().join("out.db"), all));
}

fn offset_after(records: &[String], lines: i64) -> usize {
    records.iter().take(lines as usize).map(|r| r.len() + 1).sum()
}

#[test]
fn a_crash_before_the_commit_leaves_the_batch_to_the_rerun() {
    // Rows of batch 4 are written but not committed when the process dies.
    crash_and_resume("sink::before_commit=3*off->return", 3);
}

#[test]
fn a_crash_after_the_commit_is_not_replayed() {
    // Batch 2 is committed; the process dies before it reads batch 3.
    crash_and_resume("sink::after_commit=1*off->return", 2);
}

#[test]
fn a_crash_in_the_first_batch_loses_nothing() {
    crash_and_resume("sink::before_commit=return", 0);
}
