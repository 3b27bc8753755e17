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

/// The test-faults build of `ddb-json` (see host/build.rs).
const FAULTY: &str = env!("SLUICE_TEST_FAULTS_WASM");

fn record(event_id: &str, image: &str) -> String {
    format!(
        r#"{{"eventID":"{event_id}","eventName":"INSERT","tableName":"orders","dynamodb":{{"ApproximateCreationDateTime":1767225600000,"Keys":{{"id":{{"S":"a"}}}},"NewImage":{image}}}}}"#
    )
}

#[test]
fn a_fault_or_a_wrong_number_of_outcomes_fails_a_case_even_when_expected_or_blessed() {
    for fault in ["panic", "miscount"] {
        let dir = scratch();
        let input = [
            record("e-1", r#"{"id":{"S":"a"}}"#),
            record(&format!("sluice-fault:{fault}"), r#"{"id":{"S":"a"}}"#),
        ];
        std::fs::write(dir.path().join("c.in.jsonl"), input.join("\n") + "\n").unwrap();
        // Even an expected file that lists the fault does not make it pass.
        run_ok(sluice().args(["guest", "test", "--bless", "builtin:ddb-json"]).arg(dir.path()));
        let mut expected = std::fs::read_to_string(dir.path().join("c.out.jsonl")).unwrap();
        expected = expected.lines().next().unwrap().to_owned() + "\n{\"fault\":\"anything\"}\n";
        std::fs::write(dir.path().join("c.out.jsonl"), &expected).unwrap();

        for bless in [false, true] {
            let mut cmd = sluice();
            cmd.args(["guest", "test"]);
            if bless {
                cmd.arg("--bless");
            }
            let out = cmd.arg(FAULTY).arg(dir.path()).output().unwrap();
            let text = stdout(&out);
            assert_eq!(out.status.code(), Some(1), "{fault}, bless {bless}: {text}");
            assert!(text.contains("FAILED  c") && text.contains("broke the contract"), "{text}");
            let why = if fault == "panic" { "trapped" } else { "returned 0 outcomes for 1 records" };
            assert!(text.contains(&format!("record 2: the transform {why}")), "{text}");
        }
        let kept = std::fs::read_to_string(dir.path().join("c.out.jsonl")).unwrap();
        assert_eq!(kept, expected, "--bless never writes a fault as expected");
    }
}

#[test]
fn a_case_sets_the_table_keys_settings_export_lines_and_fetch_fixtures() {
    let dir = scratch();
    // Export lines of table `orders`, keyed by `id`, at the export's time.
    std::fs::write(
        dir.path().join("export.in.jsonl"),
        "{\"Item\":{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1.50\"}}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("export.toml"),
        "table = \"orders\"\nkeys = [\"id\"]\n[export]\ntime_micros = 1767225600000000\n",
    )
    .unwrap();
    let out = sluice().args(["guest", "test", "builtin:ddb-json"]).arg(dir.path()).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("NEW     export"), "{text}");
    assert!(text.contains(r#""table":"orders""#) && text.contains(r#""key":"{\"id\":\"a\"}""#), "{text}");
    assert!(
        text.contains(r#""micros":1767225600000000"#) && text.contains(r#""event_name":"BULK_LOAD""#),
        "{text}"
    );

    // A joining guest reads its fixtures: an object, and one that is not there.
    let dir = scratch();
    let joined = record("e-1", r#"{"id":{"S":"a"},"doc":{"S":"s3://b/p/1.json"}}"#);
    let missing = record("e-2", r#"{"id":{"S":"a"},"doc":{"S":"s3://b/p/2.json"}}"#);
    let unlisted = record("e-3", r#"{"id":{"S":"a"},"doc":{"S":"s3://b/p/3.json"}}"#);
    std::fs::write(dir.path().join("join.in.jsonl"), [joined, missing, unlisted].join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("join.toml"),
        "table = \"orders\"\n[settings]\nattribute = \"doc\"\n\
         [fetch]\n\"s3://b/p/1.json\" = '{\"x\": 1}'\n\"s3://b/p/2.json\" = false\n",
    )
    .unwrap();
    let out = sluice().args(["guest", "test", "builtin:s3-join"]).arg(dir.path()).output().unwrap();
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("{\"row\"")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains(r#""s3_join_status":{"text":"joined"}"#) && lines[0].contains(r#""x":1"#),
        "{text}"
    );
    assert!(lines[1].contains(r#""s3_join_status":{"text":"missing"}"#), "{text}");
    assert!(
        lines[2].contains(r#""s3_join_status":{"text":"error"}"#) && lines[2].contains("no fixture"),
        "{text}"
    );

    // A setting the guest does not know stops the case, as it would stop a run.
    std::fs::write(dir.path().join("join.toml"), "[settings]\ncolour = \"blue\"\n").unwrap();
    let out = sluice().args(["guest", "test", "builtin:s3-join"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("colour"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bytes` with every `from` replaced by `to` (of the same length).
fn patched(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from.as_bytes() {
            out[i..i + from.len()].copy_from_slice(to.as_bytes());
            found += 1;
        }
        i += 1;
    }
    assert!(found > 0, "{from} not in the component");
    out
}

#[test]
fn a_component_that_does_not_fit_says_why_in_words() {
    let dir = scratch();
    std::fs::copy(cases_dir().join("deletes.in.jsonl"), dir.path().join("deletes.in.jsonl")).unwrap();
    // The s3-join build imports the host's interfaces, which ddb-json never calls.
    let real = std::fs::read(Path::new(FAULTY).with_file_name("s3-join.wasm")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("core.wasm", b"\0asm\x01\0\0\0".to_vec(), "is a core WebAssembly module, not a component"),
        ("text.wasm", b"hello, world".to_vec(), "is not WebAssembly (12 bytes"),
        (
            "old.wasm",
            ["types", "host", "transform"].iter().fold(real.clone(), |wasm, interface| {
                let name = format!("sluice:transform/{interface}@");
                patched(&wasm, &format!("{name}0.2.0"), &format!("{name}0.1.9"))
            }),
            "was built against sluice:transform@0.1.9; this sluice speaks sluice:transform@0.2.0",
        ),
        (
            "alien.wasm",
            patched(&real, "sluice:transform/host@0.2.0", "acme:transformxx/host@0.2.0"),
            "imports acme:transformxx/host@0.2.0, which sluice does not provide",
        ),
        (
            "nothing.wasm",
            patched(&real, "sluice:transform/transform@0.2.0", "sluice:transform/transfxrm@0.2.0"),
            "does not export sluice:transform/transform@0.2.0",
        ),
    ];
    for (name, bytes, why) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = sluice().args(["guest", "test"]).arg(&path).arg(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: {why:?} in {stderr}");
        assert!(stderr.lines().count() < 8, "{name}: no dumps: {stderr}");
    }
}
