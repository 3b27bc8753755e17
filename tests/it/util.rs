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

/// The SQL condition on `_sluice_checkpoints` that keeps only source
/// positions, leaving out transform stamps and totals.
pub const POSITIONS_ONLY: &str =
    "stream NOT LIKE 'transform:%' AND stream NOT LIKE 'totals:%' AND stream NOT LIKE 'applied:%'";

/// Manifest lines (under `[batch]`) that commit every batch on its own, for
/// tests that compare counts or crash points batch by batch.
pub const ONE_BATCH_A_COMMIT: &str = "max_coalesce = 0\n";

/// A summary's "(N batches, M commits)": batches read, transactions committed.
pub fn batches_and_commits(summary: &str) -> (u64, u64) {
    let inner = summary.split_once(" (").and_then(|(_, r)| r.split_once(')')).map(|(i, _)| i).unwrap();
    let number = |part: &str| part.split_whitespace().next().unwrap().parse().unwrap();
    let (batches, commits) = inner.split_once(", ").unwrap();
    (number(batches), number(commits))
}

/// Writes `stream.jsonl` and a manifest reading it into `out.db`.
pub fn pipeline(dir: &Path, records: &[String], batch: usize, extra: &str) -> PathBuf {
    pipeline_into(dir, records, batch, "type = \"sqlite\"\npath = \"out.db\"", extra)
}

/// Writes `stream.jsonl` and a manifest reading it into the `[sink]` given.
pub fn pipeline_into(dir: &Path, records: &[String], batch: usize, sink: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("stream.jsonl"), records.join("\n") + "\n").unwrap();
    let manifest = dir.join("pipeline.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"it\"\n[source]\ntype = \"file\"\npath = \"stream.jsonl\"\n\
             [sink]\n{sink}\n[batch]\nmax_records = {batch}\n{extra}"
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

/// JSON with every number in one spelling, so that documents compare by
/// value whatever a database did to the digits' spelling (jsonb writes
/// `1E-130` as a 131-digit decimal, for instance).
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(canonical_number(&n.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => other.clone(),
    }
}

/// `-0.0120E+3` becomes `-12e-0`: significant digits and a power of ten.
fn canonical_number(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().expect("exponent")),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let exp = exp - frac.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return "0".into();
    }
    let significant = trimmed.trim_end_matches('0');
    let exp = exp + (trimmed.len() - significant.len()) as i64;
    format!("{}{significant}e{exp}", if negative { "-" } else { "" })
}

/// Item states with documents in canonical form, for comparing sinks.
pub fn canonical_states(states: Vec<ItemState>) -> Vec<ItemState> {
    states.into_iter().map(|s| ItemState { new_image: s.new_image.as_ref().map(canonical), ..s }).collect()
}

/// Compares item states and reports the first few differences readably.
pub fn assert_same_items(actual: &[ItemState], expected: &[ItemState]) {
    let key = |i: &ItemState| (i.table.clone(), i.key.clone());
    let mut problems = Vec::new();
    for e in expected {
        match actual.iter().find(|a| key(a) == key(e)) {
            None => {
                problems.push(format!("missing {:?} (event {}, deleted {})", key(e), e.event_id, e.deleted))
            }
            Some(a) if a != e => {
                problems.push(format!("differs {:?}:\n  actual   {a:?}\n  expected {e:?}", key(e)))
            }
            Some(_) => {}
        }
    }
    for a in actual {
        if !expected.iter().any(|e| key(e) == key(a)) {
            problems.push(format!("unexpected {:?} (event {})", key(a), a.event_id));
        }
    }
    let shown: Vec<&String> = problems.iter().take(5).collect();
    assert!(problems.is_empty(), "{} of {} items differ, e.g.:\n{}", problems.len(), expected.len(), {
        shown.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("\n")
    });
}

/// The rows of `cdc.<target>` in a PostgreSQL database (the PostgreSQL
/// sink's, or the Redshift stand-in's), documents in canonical form.
pub fn pg_state(url: &str, target: &str) -> Vec<ItemState> {
    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let rows = client
        .query(
            &format!("SELECT table_name, keys, is_deleted, new_image::text, event_id FROM cdc.{target} ORDER BY 1, 2"),
            &[],
        )
        .unwrap();
    canonical_states(
        rows.iter()
            .map(|r| ItemState {
                table: r.get(0),
                key: r.get(1),
                deleted: r.get(2),
                new_image: r.get::<_, Option<String>>(3).map(|t| serde_json::from_str(&t).unwrap()),
                event_id: r.get(4),
            })
            .collect(),
    )
}

/// The manifest's `[[tables]]` for sink comparisons: orders with soft
/// deletes, everything else into one table with hard deletes.
pub const SOFT_AND_HARD: &str = "\
[[tables]]
source = \"orders\"
target = \"orders_cdc\"

[defaults]
target = \"other_cdc\"
deletes = \"hard\"
";

/// Checks a database's `cdc` schema against the generator's final state,
/// for the tables of [`SOFT_AND_HARD`].
pub fn assert_pg_like_oracle(url: &str, g: &sluice::generator::Generated) {
    assert_same_items(
        &pg_state(url, "orders_cdc"),
        &canonical_states(expected_soft(&g.expected, &["orders"])),
    );
    let others = expected_soft(&g.expected, &["customers", "devices"]);
    let live: Vec<ItemState> = others.into_iter().filter(|i| !i.deleted).collect();
    assert_same_items(&pg_state(url, "other_cdc"), &canonical_states(live));
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

/// A runtime for the AWS SDK calls a test makes itself.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// An S3 client for the shared moto server.
pub fn s3() -> aws_sdk_s3::Client {
    sluice_test_support::moto::shared().s3_client()
}
