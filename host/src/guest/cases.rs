//! `sluice guest test`: one guest, in isolation, over case files.
//!
//! A case is two or three files in one folder:
//! * `<name>.in.jsonl`: input records, one per line; a record's sequence is
//!   its line number;
//! * `<name>.out.jsonl`: one expected outcome per record, one of
//!   `{"row": {...}}`, `{"skip": "why"}` or `{"error": "why"}`;
//! * `<name>.toml`, optional: what the manifest would say ([`CaseConfig`]).
//!
//! A row's `key` is compared as text (its exact spelling is the contract);
//! images are compared as JSON values, numbers digit for digit. A case fails
//! on any difference, on a wrong number of outcomes, and on any fault (a
//! trap, the memory cap or time budget), which `--bless` never writes as
//! expected. `--bless` writes the actual outcomes as the expected ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Fetch, GuestLimits, GuestRuntime, TableSettings, TransformRef};
use crate::record::{ExportInfo, Format, Operation, Outcome, SourceRecord, Value};

/// How one case went.
#[derive(Debug)]
pub enum Verdict {
    Passed,
    /// Why: a unified diff, expected against actual, or the faults.
    Failed(String),
    /// No expected file yet; the actual outcomes, to review and bless.
    Unexpected(String),
    /// The expected file was (re)written.
    Blessed,
}

/// `<name>.toml`: the table the guest serves in the case, as a manifest's
/// `[[tables]]` entry would configure it, and what the case feeds it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseConfig {
    /// The DynamoDB table (default: the case's name).
    table: Option<String>,
    /// The sink table (default `cases`).
    target: Option<String>,
    /// The key attribute names (an export's lines need them).
    #[serde(default)]
    keys: Vec<String>,
    /// `[tables.settings]`, passed to `configure`.
    #[serde(default)]
    settings: toml::Table,
    /// The input lines are lines of this export's data files, not stream changes.
    export: Option<CaseExport>,
    /// What `fetch` finds: URI to the object's text, or `false` for not found.
    #[serde(default)]
    fetch: HashMap<String, Fixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseExport {
    /// `exportTime` in microseconds since the Unix epoch.
    time_micros: u64,
    /// An incremental export (default: full).
    #[serde(default)]
    incremental: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Fixture {
    Text(String),
    /// Only `false`: the object does not exist.
    Missing(bool),
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
        let config_path = dir.join(format!("{name}.toml"));
        let config: CaseConfig = match std::fs::read_to_string(&config_path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("reading {}", config_path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CaseConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", config_path.display())),
        };
        let text = std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
        let outcomes =
            run_case(runtime, transform, &name, &config, &text).with_context(|| format!("case {name}"))?;
        verdicts.push((name.clone(), judge(dir, &name, &outcomes, bless)?));
    }
    Ok(verdicts)
}

/// The outcomes of one case's records, on a fresh instance.
fn run_case(
    runtime: &mut GuestRuntime,
    transform: &TransformRef,
    name: &str,
    config: &CaseConfig,
    text: &str,
) -> Result<Vec<Outcome>> {
    let table = config.table.clone().unwrap_or_else(|| name.to_owned());
    let fixtures = config
        .fetch
        .iter()
        .map(|(uri, fixture)| match fixture {
            Fixture::Text(body) => Ok((uri.clone(), Some(body.clone().into_bytes()))),
            Fixture::Missing(false) => Ok((uri.clone(), None)),
            Fixture::Missing(true) => bail!("fetch.{uri:?}: give the object's text, or false for not found"),
        })
        .collect::<Result<HashMap<_, _>>>()?;
    let settings = TableSettings {
        source_table: table.clone(),
        target_table: config.target.clone().unwrap_or_else(|| "cases".into()),
        keys: config.keys.clone(),
        settings: config
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), crate::manifest::setting_text(v)))
            .collect(),
    };
    let mut guest = runtime.instantiate(transform, settings, GuestLimits::default())?;
    if !fixtures.is_empty() {
        guest.allow_fetch(Fetch::Fixtures(Arc::new(fixtures)));
    }
    let format = match &config.export {
        None => Format::StreamChange,
        Some(e) => Format::ExportLine(Arc::new(ExportInfo {
            export_micros: e.time_micros,
            incremental: e.incremental,
        })),
    };
    // The guest is configured as table `table`; its records are routed so.
    let (partition, table): (Arc<str>, Arc<str>) = (name.into(), table.into());
    let mut records: Vec<SourceRecord> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| SourceRecord {
            payload: line.as_bytes().to_vec(),
            table: Ok(table.clone()),
            partition: partition.clone(),
            sequence: (i + 1).to_string(),
            format: format.clone(),
        })
        .collect();
    guest.transform(1, &mut records)
}

/// Compares a case's outcomes with the expected ones (or blesses them).
fn judge(dir: &Path, name: &str, outcomes: &[Outcome], bless: bool) -> Result<Verdict> {
    let faults: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Outcome::Fault(why) => Some(format!("record {}: {why}", i + 1)),
            _ => None,
        })
        .collect();
    if !faults.is_empty() {
        return Ok(Verdict::Failed(format!(
            "the transform broke the contract (a fault is never an expected outcome):\n  {}\n",
            faults.join("\n  ")
        )));
    }
    let actual: Vec<Json> = outcomes.iter().map(render).collect();
    let actual_text = to_lines(&actual);
    let expected_path = dir.join(format!("{name}.out.jsonl"));
    if bless {
        std::fs::write(&expected_path, &actual_text)
            .with_context(|| format!("writing {}", expected_path.display()))?;
        return Ok(Verdict::Blessed);
    }
    if !expected_path.exists() {
        return Ok(Verdict::Unexpected(actual_text));
    }
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
    Ok(if expected == actual {
        Verdict::Passed
    } else {
        Verdict::Failed(diff(&pretty(&expected), &pretty(&actual)))
    })
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
