//! Bad manifests are refused with the file, line and field; good ones,
//! including every manifest in `pipelines/`, validate.

use std::path::Path;
use std::time::Duration;

use sluice::sinks::SinkConfig;
use sluice::sources::SourceConfig;

use crate::util::{run_ok, sluice, stdout};

const GOOD: &str = r#"name = "m"

[source]
type = "file"
path = "data/stream.jsonl"

[sink]
type = "sqlite"
path = "out/m.db"

[[tables]]
source = "orders"
target = "orders_cdc"
"#;

/// Parses `text` as `pipelines/m.toml` and returns the error message.
fn error(text: &str) -> String {
    match sluice::manifest::parse(Path::new("pipelines/m.toml"), text) {
        Ok(_) => panic!("accepted a bad manifest:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(text: &str, location: &str, words: &[&str]) {
    let message = error(text);
    assert!(message.starts_with(&format!("pipelines/m.toml:{location}: ")), "{message}");
    for w in words {
        assert!(message.contains(w), "{w:?} missing from: {message}");
    }
}

#[test]
fn the_good_manifest_resolves_paths_from_its_folder() {
    let plan = sluice::manifest::parse(Path::new("pipelines/m.toml"), GOOD).unwrap();
    assert_eq!(
        plan.source,
        SourceConfig::File(sluice::sources::file::Config {
            path: "pipelines/data/stream.jsonl".into(),
            written: "data/stream.jsonl".into()
        })
    );
    assert_eq!(
        plan.sink,
        SinkConfig::Sqlite(sluice::sinks::sqlite::Config { path: "pipelines/out/m.db".into() })
    );
    assert_eq!(plan.batch.max_records, 500);
    // With group commit a batch is sent as soon as no more records are
    // ready; without it, a batch waits to fill.
    assert_eq!(plan.batch.linger, Duration::ZERO);
    let alone = format!("{GOOD}[batch]\nmax_coalesce = 0\n");
    let plan = sluice::manifest::parse(Path::new("pipelines/m.toml"), &alone).unwrap();
    assert_eq!(plan.batch.linger, plan.batch.max_wait);
}

#[test]
fn redshift_commits_take_larger_transactions_by_default() {
    let plan = sluice::manifest::parse(Path::new("pipelines/m.toml"), GOOD).unwrap();
    assert_eq!(plan.batch.max_coalesce, 10_000);
    let redshift = GOOD.replace(
        "type = \"sqlite\"\npath = \"out/m.db\"",
        "type = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"wg\"\n\
         secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:s\"",
    );
    let plan = sluice::manifest::parse(Path::new("pipelines/m.toml"), &redshift).unwrap();
    assert_eq!(plan.batch.max_coalesce, sluice::sinks::redshift::DEFAULT_MAX_COALESCE);
    assert_eq!(plan.batch.max_coalesce, 25_000);
    let set = format!("{redshift}[batch]\nmax_coalesce = 700\n");
    assert_eq!(sluice::manifest::parse(Path::new("pipelines/m.toml"), &set).unwrap().batch.max_coalesce, 700);
}

#[test]
fn unknown_fields_are_named_at_their_own_line() {
    assert_error(&format!("{GOOD}colour = \"blue\"\n"), "14:1", &["unknown field `colour`"]);
    assert_error(
        &GOOD.replace("path = \"data/", "paht = \"data/"),
        "5:1",
        &["unknown field `paht`", "`path`"],
    );
    assert_error(&GOOD.replace("path = \"out/", "file = \"out/"), "9:1", &["unknown field `file`"]);
    assert_error(
        &GOOD.replace("target = \"orders_cdc\"", "traget = \"orders_cdc\""),
        "13:1",
        &["unknown field `traget`"],
    );
    assert_error(
        &format!("{GOOD}[batch]\nmax_recs = 5\n"),
        "15:1",
        &["unknown field `max_recs`", "max_records"],
    );
}

#[test]
fn bad_values_are_explained_where_they_are() {
    assert_error(
        &GOOD.replace("type = \"file\"", "type = \"kafka\""),
        "4:8",
        &["unknown source type \"kafka\"", "file"],
    );
    assert_error(
        &GOOD.replace("type = \"sqlite\"", "type = \"oracle\""),
        "8:8",
        &["unknown sink type \"oracle\""],
    );
    assert_error(&GOOD.replace("orders_cdc", "orders-cdc"), "13:10", &["\"orders-cdc\" is not a valid name"]);
    assert_error(&GOOD.replace("orders_cdc", "_sluice_x"), "13:10", &["reserved"]);
    assert_error(
        &format!("{GOOD}transform = \"builtin:nope\"\n"),
        "14:13",
        &["no built-in transform \"nope\"", "builtin:ddb-json"],
    );
    assert_error(&format!("{GOOD}deletes = \"sometimes\"\n"), "14:11", &["\"soft\" or \"hard\""]);
    assert_error(&format!("{GOOD}[batch]\nmax_records = 0\n"), "15:15", &["between 1 and 100000"]);
    assert_error(&format!("{GOOD}[batch]\nmax_records = \"many\"\n"), "15:15", &["invalid type"]);
    assert_error(
        &format!("{GOOD}[[tables]]\nsource = \"orders\"\ntarget = \"x\"\n"),
        "15:10",
        &["two [[tables]] entries"],
    );
    assert_error(&GOOD.replace("name = \"m\"", "name = \"m n\""), "1:8", &["name"]);
    assert_error(&format!("{GOOD}raw_payload = \"hide\"\n"), "14:15", &["\"keep\" or \"drop\""]);
    assert_error("name = \"m\"\n[source\n", "2:8", &["unclosed table, expected `]`"]);
    assert_error(
        &format!("{GOOD}[batch]\nmax_wait_ms = 100\nlinger_ms = 500\n"),
        "16:13",
        &["cannot exceed max_wait_ms (100)"],
    );
    assert_error(&format!("{GOOD}[guest]\nthreads = 0\n"), "15:11", &["between 1 and 256"]);
    assert_error(&format!("{GOOD}[run]\nmax_dead_letter_ratio = 2.0\n"), "15:25", &["between 0 and 1"]);
    assert_error(&format!("{GOOD}[telemetry]\nmetrics_addr = \"9898\"\n"), "15:16", &["address and port"]);
    assert_error(&format!("{GOOD}[telemetry]\nstall_after = \"soon\"\n"), "15:15", &["duration"]);
    assert_error(
        &format!("{GOOD}[telemetry]\nmetrics_port = 1\n"),
        "15:1",
        &["unknown field `metrics_port`"],
    );
}

#[test]
fn missing_parts_are_named() {
    let no_tables = GOOD.split("[[tables]]").next().unwrap();
    assert!(error(no_tables).contains("no table is routed anywhere"), "{}", error(no_tables));
    assert!(error(&GOOD.replace("path = \"data/stream.jsonl\"\n", "")).contains("missing field `path`"));
    let mixed = format!("{GOOD}deletes = \"hard\"\n[[tables]]\nsource = \"b\"\ntarget = \"orders_cdc\"\n");
    assert!(error(&mixed).contains("both deletes"), "{}", error(&mixed));
}

#[test]
fn sluice_validate_reports_errors_and_exits_5() {
    let dir = crate::util::scratch();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, GOOD.replace("target = \"orders_cdc\"", "traget = \"orders_cdc\"")).unwrap();
    let out = sluice().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:13:1: unknown field `traget`"), "{stderr}");
    assert!(stderr.contains("13 | traget = \"orders_cdc\""), "{stderr}");
}

/// `validate` refuses what `run` would refuse before reading, at the line
/// that causes it; `run` refuses it too, before it writes anything.
#[test]
fn validate_starts_the_guests_and_checks_files_and_variables_like_run() {
    let dir = crate::util::scratch();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/stream.jsonl"), "").unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm not really").unwrap();
    let postgres = "type = \"postgres\"\nurl_env = \"SLUICE_IT_UNSET_URL\"";
    let cases: Vec<(String, &str, &[&str])> = vec![
        (format!("{GOOD}[guest]\nmemory_limit_mb = 1\n"), "12:10", &["memory cap of 1 MiB"]),
        (format!("{GOOD}[tables.settings]\ncolour = \"blue\"\n"), "12:10", &["no settings", "colour"]),
        (
            GOOD.replace("type = \"sqlite\"\npath = \"out/m.db\"", postgres),
            "9:11",
            &["SLUICE_IT_UNSET_URL", "not set"],
        ),
        (
            GOOD.replace("data/stream.jsonl", "data/missing.jsonl"),
            "5:8",
            &["there is no file", "missing.jsonl"],
        ),
        (GOOD.replace("out/m.db", "data"), "9:8", &["is a folder"]),
        (format!("{GOOD}transform = \"missing.wasm\"\n"), "14:13", &["missing.wasm"]),
        (format!("{GOOD}transform = \"broken.wasm\"\n"), "14:13", &["broken.wasm"]),
        (
            format!(
                "{}[defaults]\ntarget = \"rest\"\ntransform = \"broken.wasm\"\n",
                GOOD.split("[[tables]]").next().unwrap()
            ),
            "13:13",
            &["broken.wasm"],
        ),
    ];
    for (text, location, words) in cases {
        let path = dir.path().join("m.toml");
        std::fs::write(&path, &text).unwrap();
        for command in ["validate", "run"] {
            let out = sluice().arg(command).arg(&path).env_remove("SLUICE_IT_UNSET_URL").output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(5), "{command}: {stderr}\n{text}");
            assert!(
                stderr.contains(&format!("m.toml:{location}: ")),
                "{command}: {location} in {stderr}\n{text}"
            );
            for w in words {
                assert!(stderr.contains(w), "{command}: {w:?} in {stderr}");
            }
            assert!(!dir.path().join("out").exists(), "{command} wrote nothing");
        }
    }
}

#[test]
fn validate_reports_every_problem_not_only_the_first() {
    let dir = crate::util::scratch();
    let text = format!(
        "{}[[tables]]\nsource = \"a\"\ntarget = \"a_cdc\"\ntransform = \"missing-a.wasm\"\n\
         [[tables]]\nsource = \"b\"\ntarget = \"b_cdc\"\ntransform = \"missing-b.wasm\"\n",
        GOOD.split("[[tables]]").next().unwrap()
    );
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).unwrap();
    let out = sluice().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("3 problems:"), "{stderr}");
    for (location, what) in
        [("5:8", "there is no file"), ("14:13", "missing-a.wasm"), ("18:13", "missing-b.wasm")]
    {
        assert!(
            stderr.contains(&format!("m.toml:{location}: ")) && stderr.contains(what),
            "{location} {what}: {stderr}"
        );
    }
}

#[test]
fn every_shipped_pipeline_validates() {
    // A copy, with what the demo generates and the variable postgres.toml names.
    let shipped = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines"));
    let copy = crate::util::scratch();
    let dir = copy.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for entry in std::fs::read_dir(shipped).unwrap().chain(std::fs::read_dir(shipped.join("data")).unwrap()) {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.strip_prefix(shipped).unwrap())).unwrap();
        }
    }
    run_ok(sluice().args(["gen", "--changes", "10", "--out"]).arg(dir.join("data/generated/stream.jsonl")));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let mut validate = sluice();
            validate
                .args(["validate", "--offline"])
                .arg(&path)
                .env("SLUICE_POSTGRES_URL", "postgres://u@h/db");
            let out = run_ok(&mut validate);
            assert!(stdout(&out).contains("is valid"));
            seen += 1;
        }
    }
    assert!(seen >= 2, "pipelines/ should hold the demo and the seed manifest");
}

#[test]
fn kinesis_sources_are_checked() {
    let kinesis = |extra: &str| {
        GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            &format!("type = \"kinesis\"\nstream_arn = \"arn:aws:kinesis:us-east-1:1:stream/s\"\n{extra}"),
        )
    };
    let plan =
        sluice::manifest::parse(Path::new("pipelines/m.toml"), &kinesis("start = \"latest\"")).unwrap();
    assert!(matches!(plan.source, SourceConfig::Kinesis(_)));
    assert_error(&kinesis("start = \"earliest\""), "6:9", &["trim_horizon, latest or at_timestamp"]);
    assert_error(&kinesis("start = \"at_timestamp\""), "6:9", &["needs timestamp"]);
    assert_error(&kinesis("start = \"at_timestamp\"\ntimestamp = \"yesterday\""), "7:13", &["RFC 3339"]);
    assert_error(&kinesis("shard = \"1\""), "6:1", &["unknown field `shard`"]);
    let SourceConfig::Kinesis(k) = plan.source else { unreachable!() };
    assert_eq!(k.poll_interval, Duration::from_millis(250));
    assert_error(&kinesis("poll_interval_ms = 100"), "6:20", &["between 200 and 60000"]);
    assert_error(
        &kinesis("consumer = \"c\"\npoll_interval_ms = 500"),
        "7:20",
        &["applies to polling; with a consumer, records are pushed"],
    );
    assert_error(
        &GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            "type = \"kinesis\"\nstream_arn = \"orders\"",
        ),
        "5:14",
        &["Kinesis stream ARN"],
    );
}

#[test]
fn coordination_is_checked_and_only_where_shards_can_be_fenced() {
    let coordinated = |sink: &str, coordination: &str| {
        GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            "type = \"kinesis\"\nstream_arn = \"arn:aws:kinesis:us-east-1:1:stream/s\"",
        )
        .replace("type = \"sqlite\"\npath = \"out/m.db\"", sink)
            + &format!("\n[coordination]\ntype = \"dynamodb\"\n{coordination}")
    };
    let sqlite = "type = \"sqlite\"\npath = \"out/m.db\"";
    let plan =
        sluice::manifest::parse(Path::new("pipelines/m.toml"), &coordinated(sqlite, "table = \"leases\""))
            .unwrap();
    let c = plan.coordination.unwrap();
    assert_eq!((c.table.as_str(), c.lease_duration, c.max_leases), ("leases", Duration::from_secs(10), None));
    // The default worker id: the host name and the process id.
    assert!(c.worker_id.ends_with(&format!(":{}", std::process::id())), "{}", c.worker_id);
    let set = coordinated(
        sqlite,
        "table = \"leases\"\nworker_id = \"a\"\nlease_duration = \"3s\"\nmax_leases_per_worker = 4",
    );
    let c = sluice::manifest::parse(Path::new("pipelines/m.toml"), &set).unwrap().coordination.unwrap();
    assert_eq!(
        (c.worker_id.as_str(), c.lease_duration, c.max_leases),
        ("a", Duration::from_secs(3), Some(4))
    );

    // The section starts at line 15.
    assert_error(&coordinated(sqlite, ""), "15:1", &["missing field `table`"]);
    assert_error(&coordinated(sqlite, "table = \"l\""), "17:9", &["3 to 255"]);
    assert_error(&coordinated(sqlite, "table = \"leases\"\nlease_duration = \"10\""), "18:18", &["\"10s\""]);
    assert_error(
        &coordinated(sqlite, "table = \"leases\"\nlease_duration = \"2h\""),
        "18:18",
        &["between 1s and 1h"],
    );
    assert_error(&coordinated(sqlite, "table = \"leases\"\nworker_id = \" \""), "18:13", &["worker id"]);
    assert_error(
        &coordinated(sqlite, "table = \"leases\"\nmax_leases_per_worker = 0"),
        "18:25",
        &["between 1"],
    );
    assert_error(
        &coordinated(sqlite, "table = \"leases\"\nowner = \"a\""),
        "18:1",
        &["unknown field `owner`"],
    );
    let zookeeper = coordinated(sqlite, "table = \"leases\"").replace("\"dynamodb\"", "\"zookeeper\"");
    assert_error(&zookeeper, "16:8", &["only one is \"dynamodb\""]);
    assert_error(
        &coordinated("type = \"s3\"\npath = \"s3://b/p/\"", "table = \"leases\""),
        "16:8",
        &["fences each shard"],
    );
    assert_error(
        &GOOD.replace(
            "target = \"orders_cdc\"\n",
            "target = \"orders_cdc\"\n\n[coordination]\ntype = \"dynamodb\"\ntable = \"leases\"\n",
        ),
        "16:8",
        &["Kinesis stream's shards or an export's data files", "one process reads alone"],
    );
}

#[test]
fn export_sources_are_checked() {
    let export = |extra: &str| {
        GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            &format!("type = \"export\"\npath = \"s3://b/p/AWSDynamoDB/e/\"\n{extra}"),
        )
    };
    let then = "then = { type = \"kinesis\", stream_arn = \"arn:aws:kinesis:us-east-1:1:stream/s\", margin = \"15m\" }";
    let plan = sluice::manifest::parse(Path::new("pipelines/m.toml"), &export(then)).unwrap();
    let SourceConfig::Export(e) = &plan.source else { panic!("{:?}", plan.source) };
    assert_eq!(e.then.as_ref().unwrap().margin, std::time::Duration::from_secs(900));
    assert_eq!(e.parallel, 4);
    assert_error(&export("parallel = 0"), "6:12", &["between 1 and 64"]);
    assert_error(
        &export(&then.replace("margin = \"15m\"", "start = \"latest\"")),
        "6:89",
        &["exportTime minus `margin`"],
    );
    assert_error(&export(&then.replace("15m", "soon")), "6:90", &["not a duration"]);
    assert_error(&export(&then.replace("\"kinesis\"", "\"file\"")), "6:8", &["then must be"]);
    // The stream under `then` is a Kinesis source's section: the same fields, checked alike.
    assert_error(&export(&then.replace("margin", "shard")), "6:81", &["unknown field `shard`", "`margin`"]);
    assert_error(&export(&then.replace("type = \"kinesis\", ", "")), "6:8", &["missing field `type`"]);
    assert_error(
        &GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            "type = \"export\"\npath = \"gs://b/e/\"",
        ),
        "5:8",
        &["s3://bucket/prefix/AWSDynamoDB"],
    );
    assert_error(
        &GOOD.replace(
            "type = \"file\"\npath = \"data/stream.jsonl\"",
            "type = \"kinesis\"\nstream_arn = \"arn:aws:kinesis:us-east-1:1:stream/s\"\nmargin = \"5m\"",
        ),
        "6:10",
        &["only to the stream under an export's `then`"],
    );
}

#[test]
fn every_shipped_pipeline_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            sluice::manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} manifests in {}", dir.display());
}

#[test]
fn values_a_sink_cannot_keep_are_refused_at_their_line() {
    let long_name = GOOD.replace("name = \"m\"", &format!("name = \"{}\"", "n".repeat(257)));
    assert_error(&long_name, "1:8", &["the name is 257 bytes", "at most 256"]);
    let postgres = GOOD
        .replace("type = \"sqlite\"\npath = \"out/m.db\"", "type = \"postgres\"\nurl = \"postgres://u@h/d\"");
    let long_target =
        postgres.replace("target = \"orders_cdc\"", &format!("target = \"{}\"", "t".repeat(64)));
    assert_error(&long_target, "13:10", &["longer than 63 bytes"]);
    let redshift = GOOD
        .replace(
            "type = \"sqlite\"\npath = \"out/m.db\"",
            "type = \"redshift\"\ndatabase = \"dev\"\nworkgroup = \"wg1\"",
        )
        .replace("path = \"data/stream.jsonl\"", &format!("path = \"{}.jsonl\"", "d".repeat(1000)));
    assert_error(&redshift, "5:8", &["the path is 1006 bytes", "at most 1000"]);
}
