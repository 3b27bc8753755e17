//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::Value;
use sluice::generator::Expected;

/// A fresh folder for one test, removed when the test ends.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("sluice-it-").tempdir().expect("a temporary folder")
}

/// Compiled components are cached per test run, so only the first test
/// pays for compiling them.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The `sluice` binary, with a quiet log and the shared compile cache.
pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_CACHE_DIR", cache_dir()).env("SLUICE_LOG", "warn").env_remove("FAILPOINTS");
    cmd
}

/// Runs a command and insists it succeeds, showing its output if not.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A summary line's number, e.g. `count(&out, "records read")`.
pub fn count(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{summary}"))
}

/// Writes `stream.jsonl` and a manifest reading it into `out.db`.
pub fn pipeline(dir: &Path, records: &[String], batch: usize, extra: &str) -> PathBuf {
    std::fs::write(dir.join("stream.jsonl"), records.join("\n") + "\n").unwrap();
    let manifest = dir.join("pipeline.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"it\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n\
             [sink]\ntype = \"sqlite\"\npath = \"out.db\"\n[batch]\nmax_records = {batch}\n{extra}"
        ),
    )
    .unwrap();
    manifest
}

/// One item as a sink table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemState {
    pub table: String,
    pub key: String,
    pub deleted: bool,
    pub new_image: Option<Value>,
    pub event_id: String,
}

/// Every row of a target table, in key order.
pub fn table_state(db: &Path, target: &str) -> Vec<ItemState> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT table_name, keys, is_deleted, new_image, event_id FROM \"{target}\" ORDER BY table_name, keys"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        let image: Option<String> = r.get(3)?;
        Ok(ItemState {
            table: r.get(0)?,
            key: r.get(1)?,
            deleted: r.get(2)?,
            new_image: image.map(|i| serde_json::from_str(&i).expect("stored images are JSON")),
            event_id: r.get(4)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// What a soft-delete table must hold for the given DynamoDB tables.
pub fn expected_soft(expected: &[Expected], tables: &[&str]) -> Vec<ItemState> {
    let mut items: Vec<ItemState> = expected
        .iter()
        .filter(|e| tables.contains(&e.table.as_str()))
        .map(|e| ItemState {
            table: e.table.clone(),
            key: e.key.clone(),
            deleted: e.deleted,
            new_image: e.new_image.clone(),
            event_id: e.event_id.clone(),
        })
        .collect();
    items.sort_by(|a, b| (&a.table, &a.key).cmp(&(&b.table, &b.key)));
    items
}

/// Rows of any table as text, for comparing whole tables.
pub fn dump(db: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |r| {
        (0..width)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => None,
                    rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                    rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        Some(String::from_utf8_lossy(t).into_owned())
                    }
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn scalar(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}
