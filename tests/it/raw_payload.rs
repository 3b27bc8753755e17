//! What a sink table's `raw_payload` column keeps, per table.

/// `raw_payload = "drop"` keeps a table's records out of its `raw_payload`
/// column (a transform may remove private data from the images), with the
/// size still told; other tables keep theirs; SQLite, PostgreSQL and the
/// S3 sink alike.
#[test]
fn raw_payload_drop_keeps_the_record_out_of_the_row_but_tells_its_size() {
    let g = sluice::generator::generate(&sluice::generator::GenOptions {
        changes: 60,
        items: 10,
        tables: vec!["orders".into(), "customers".into()],
        ..Default::default()
    });
    let tables = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\nraw_payload = \"drop\"\n\
                  [[tables]]\nsource = \"customers\"\ntarget = \"customers_cdc\"\n";
    let url = sluice_test_support::postgres::shared().fresh_database("raw_drop");
    let sinks = [
        "type = \"sqlite\"\npath = \"out.db\"".to_owned(),
        format!("type = \"postgres\"\nurl = \"{url}\"\nschema = \"cdc\""),
        "type = \"s3\"\npath = \"lake\"".to_owned(),
    ];
    for sink in sinks {
        let dir = crate::util::scratch();
        let manifest = crate::util::pipeline_into(dir.path(), &g.records, 16, &sink, tables);
        crate::util::run_ok(crate::util::sluice().arg("run").arg(&manifest));
        // (target, raw_payload is null, size)
        let rows: Vec<(String, bool, i64)> = if sink.contains("sqlite") {
            let mut rows = Vec::new();
            for t in ["orders_cdc", "customers_cdc"] {
                let sql = format!("SELECT raw_payload IS NULL, raw_payload_size_bytes FROM {t}");
                for r in crate::util::dump(&dir.path().join("out.db"), &sql) {
                    rows.push((
                        t.to_owned(),
                        r[0].as_deref() == Some("1"),
                        r[1].as_deref().unwrap().parse().unwrap(),
                    ));
                }
            }
            rows
        } else if sink.contains("postgres") {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            ["orders_cdc", "customers_cdc"]
                .iter()
                .flat_map(|t| {
                    let sql = format!("SELECT raw_payload IS NULL, raw_payload_size_bytes FROM cdc.{t}");
                    client
                        .query(&sql, &[])
                        .unwrap()
                        .into_iter()
                        .map(|r| (t.to_string(), r.get(0), i64::from(r.get::<_, i32>(1))))
                })
                .collect()
        } else {
            let mut rows = Vec::new();
            for entry in walkdir(&dir.path().join("lake")) {
                let target =
                    ["orders_cdc", "customers_cdc"].into_iter().find(|t| entry.contains(&format!("/{t}/")));
                let Some(target) = target else { continue };
                for line in std::fs::read_to_string(&entry).unwrap().lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    rows.push((
                        target.to_owned(),
                        v["raw_payload"].is_null(),
                        v["raw_payload_size_bytes"].as_i64().unwrap(),
                    ));
                }
            }
            rows
        };
        assert!(
            rows.iter().any(|r| r.0 == "orders_cdc") && rows.iter().any(|r| r.0 == "customers_cdc"),
            "{sink}"
        );
        for (target, null, size) in rows {
            assert_eq!(null, target == "orders_cdc", "{sink}: {target}");
            assert!(size > 100, "{sink}: {target} keeps the size");
        }
    }
}

/// Every file below `dir`, as text paths.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walkdir(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}
