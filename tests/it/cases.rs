//! `sluice guest test` runs the shared case files through the component.

use std::path::Path;

use crate::util::{run_ok, scratch, sluice, stdout};

fn cases_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/cases/ddb-json"))
}

#[test]
fn builtin_component_passes_the_cases_ddb_core_passes_natively() {
    let out = run_ok(sluice().args(["guest", "test", "builtin:ddb-json"]).arg(cases_dir()));
    let cases = std::fs::read_dir(cases_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".in.jsonl"))
        .count();
    assert!(cases >= 10);
    let text = stdout(&out);
    assert!(text.contains(&format!("{cases} cases, {cases} passed, 0 failed")), "{text}");
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = scratch();
    for ext in ["in.jsonl", "out.jsonl"] {
        std::fs::copy(
            cases_dir().join(format!("every-type.{ext}")),
            dir.path().join(format!("every-type.{ext}")),
        )
        .unwrap();
    }
    let expected = dir.path().join("every-type.out.jsonl");
    let text = std::fs::read_to_string(&expected).unwrap().replace(r#""n":42"#, r#""n":43"#);
    std::fs::write(&expected, text).unwrap();

    let out = sluice().args(["guest", "test", "builtin:ddb-json"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAILED  every-type"), "{text}");
    assert!(text.contains("-      \"n\": 43,") && text.contains("+      \"n\": 42,"), "{text}");
}

#[test]
fn a_case_without_expectations_shows_the_outcomes_and_blesses_them() {
    let dir = scratch();
    std::fs::copy(cases_dir().join("deletes.in.jsonl"), dir.path().join("deletes.in.jsonl")).unwrap();
    let out = sluice().args(["guest", "test", "builtin:ddb-json"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("NEW     deletes"), "{}", stdout(&out));

    run_ok(sluice().args(["guest", "test", "--bless", "builtin:ddb-json"]).arg(dir.path()));
    let blessed = std::fs::read_to_string(dir.path().join("deletes.out.jsonl")).unwrap();
    assert_eq!(blessed, std::fs::read_to_string(cases_dir().join("deletes.out.jsonl")).unwrap());
    run_ok(sluice().args(["guest", "test", "builtin:ddb-json"]).arg(dir.path()));
}
