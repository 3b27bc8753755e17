//! `sluice guest test`: one guest, in isolation, over case files.
//!
//! A case is two files in one folder:
//! * `<name>.in.jsonl`: input records, one per line; a record's sequence is
//!   its line number;
//! * `<name>.out.jsonl`: one expected outcome per record, one of
//!   `{"row": {...}}`, `{"skip": "why"}`, `{"error": "why"}`, `{"fault": "why"}`.
//!
//! A row's `key` is compared as text (its exact spelling is the contract);
//! images are compared as JSON values, numbers digit for digit. `--bless`
//! writes the actual outcomes as the expected ones.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use super::{GuestLimits, GuestRuntime, TableSettings, TransformRef};
use crate::record::{Format, Operation, Outcome, SourceRecord, Value};

/// How one case went.
#[derive(Debug)]
pub enum Verdict {
    Passed,
    /// A unified diff, expected against actual.
    Failed(String),
    /// No expected file yet; the actual outcomes, to review and bless.
    Unexpected(String),
    /// The expected file was (re)written.
    Blessed,
}

/// Runs every case in `dir` against `transform`, each on a fresh instance.
pub fn run(
    runtime: &mut GuestRuntime,
    transform: &TransformRef,
    dir: &Path,
    bless: bool,
) -> Result<Vec<(String, Verdict)>> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the cases folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".in.jsonl"))
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        bail!("{} holds no cases (files named <case>.in.jsonl)", dir.display());
    }
    let mut verdicts = Vec::new();
    for input in inputs {
        let name =
            input.file_name().unwrap_or_default().to_string_lossy().trim_end_matches(".in.jsonl").to_owned();
        let settings =
            TableSettings { source_table: name.clone(), target_table: "cases".into(), ..Default::default() };
        let mut guest = runtime.instantiate(transform, settings, GuestLimits::default())?;
        let text = std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
        let partition: std::sync::Arc<str> = name.as_str().into();
        // The guest is configured as table `name`; its records are routed so.
        let mut records: Vec<SourceRecord> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| SourceRecord {
                payload: line.as_bytes().to_vec(),
                table: Ok(partition.clone()),
                partition: partition.clone(),
                sequence: (i + 1).to_string(),
                format: Format::StreamChange,
            })
            .collect();
        let actual: Vec<Json> = guest.transform(1, &mut records)?.iter().map(render).collect();
        let actual_text = to_lines(&actual);
        let expected_path = dir.join(format!("{name}.out.jsonl"));
        let verdict = if bless {
            std::fs::write(&expected_path, &actual_text)
                .with_context(|| format!("writing {}", expected_path.display()))?;
            Verdict::Blessed
        } else if !expected_path.exists() {
            Verdict::Unexpected(actual_text)
        } else {
            let expected_text = std::fs::read_to_string(&expected_path)?;
            let expected: Vec<Json> = expected_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    serde_json::from_str(l)
                        .with_context(|| format!("{}:{}: not JSON", expected_path.display(), i + 1))
                })
                .collect::<Result<_>>()?;
            if expected == actual {
                Verdict::Passed
            } else {
                Verdict::Failed(diff(&pretty(&expected), &pretty(&actual)))
            }
        };
        verdicts.push((name, verdict));
    }
    Ok(verdicts)
}

/// An outcome in the case-file form.
pub fn render(outcome: &Outcome) -> Json {
    match outcome {
        Outcome::Fault(fault) => json!({ "fault": fault }),
        Outcome::Skip(reason) => json!({ "skip": reason }),
        Outcome::Error(reason) => json!({ "error": reason }),
        Outcome::Row(c) => {
            let extra: serde_json::Map<String, Json> = c
                .extra
                .iter()
                .map(|col| {
                    let v = match &col.value {
                        Value::Null => Json::Null,
                        Value::Bool(b) => json!(b),
                        Value::Integer(i) => json!(i),
                        Value::Text(t) => json!({ "text": t }),
                        Value::Json(j) => json!({ "json": document(j) }),
                    };
                    (col.name.clone(), v)
                })
                .collect();
            json!({ "row": {
                "table": c.table,
                "key": c.key,
                "operation": match c.operation {
                    Operation::Upsert => "upsert",
                    Operation::Delete => "delete",
                    Operation::TtlDelete => "ttl-delete",
                },
                "order": { "micros": c.order.micros, "tiebreak": c.order.tiebreak },
                "event_name": c.event_name,
                "event_id": c.event_id,
                "new_image": c.new_image.as_deref().map(document),
                "old_image": c.old_image.as_deref().map(document),
                "error": c.error,
                "extra": extra,
            }})
        }
    }
}

/// JSON text as a value, or, if it is not JSON, a marker holding the text.
fn document(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|_| json!({ "invalid_json": text }))
}

fn to_lines(values: &[Json]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

fn pretty(values: &[Json]) -> String {
    values.iter().map(|v| serde_json::to_string_pretty(v).expect("JSON values serialise") + "\n").collect()
}

fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}
