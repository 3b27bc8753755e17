//! The shared case files in `tests/cases/ddb-json`, decoded natively. The host's
//! tests run the very same files through the `ddb-json` component
//! (`sluice guest test`), so native and Wasm behaviour cannot drift apart.

use std::path::Path;

use ddb_core::{ChangeKind, decode_stream_record};
use serde_json::{Value, json};

fn render(payload: &str, sequence: usize) -> Value {
    match decode_stream_record(payload.as_bytes()) {
        Err(e) => json!({ "error": e.to_string() }),
        Ok(c) => {
            let doc =
                |text: &Option<String>| text.as_deref().map(|t| serde_json::from_str::<Value>(t).unwrap());
            json!({ "row": {
                "table": c.table,
                "key": c.key,
                "operation": match c.kind {
                    ChangeKind::Upsert => "upsert",
                    ChangeKind::Delete => "delete",
                    ChangeKind::TtlDelete => "ttl-delete",
                },
                "order": { "micros": c.micros, "tiebreak": sequence.to_string() },
                "event_name": c.event_name,
                "event_id": c.event_id,
                "new_image": doc(&c.new_image),
                "old_image": doc(&c.old_image),
                "error": null,
                "extra": {},
            }})
        }
    }
}

#[test]
fn shared_cases_decode_natively() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/ddb-json");
    let mut cases = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the cases folder exists") {
        let input = entry.unwrap().path();
        let Some(name) = input.file_name().unwrap().to_str().unwrap().strip_suffix(".in.jsonl") else {
            continue;
        };
        cases += 1;
        let expected_text = std::fs::read_to_string(dir.join(format!("{name}.out.jsonl")))
            .unwrap_or_else(|e| panic!("{name}: no expected outcomes: {e}"));
        let expected: Vec<Value> = expected_text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let text = std::fs::read_to_string(&input).unwrap();
        let actual: Vec<Value> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| render(l, i + 1))
            .collect();
        assert_eq!(expected.len(), actual.len(), "{name}: one outcome per record");
        for (i, (want, got)) in expected.iter().zip(&actual).enumerate() {
            if want != got {
                failures.push(format!("{name} record {}:\n  expected {want}\n  actual   {got}", i + 1));
            }
        }
    }
    assert!(cases >= 10, "expected the full case set, found {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
