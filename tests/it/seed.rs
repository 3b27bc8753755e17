//! The seed's real records give the rows the seed's Glue job produced, minus
//! its defects. The differences, one by one:
//!
//! 1. Numbers stay JSON numbers (`4395`), where the seed wrote strings (`"4395"`).
//! 2. `keys` is compact JSON sorted by attribute name (`{"column1":"3120"}`),
//!    where the seed wrote Python's spelling (`{"column1": "3120"}`).
//! 3. `old_image` holds the record's `OldImage`; the seed's MODIFY row lost
//!    it (`"{}"`), and rows without one hold NULL rather than `"{}"`.
//! 4. A REMOVE clears `new_image` (NULL) where the seed wrote `"{}"`.
//! 5. `error` is NULL on every good row; the seed's INSERT row said `"{}"`.
//! 6. `raw_payload_size_bytes` is the size of `raw_payload`, which holds the
//!    record exactly as delivered; the seed copied `SizeBytes` (the item's
//!    size) and re-serialised the record.

use std::path::Path;

use serde_json::Value;
use sluice::guest::{GuestLimits, GuestRuntime, TableSettings, TransformRef};
use sluice::record::{Operation, Outcome};
use sluice::sources::ChangeRecords;

use crate::util::{dump, pipeline, run_ok, scratch, sluice};

fn seed_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/seed"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The seed's defect 1 applied to our output, to compare the rest exactly.
fn numbers_as_strings(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_strings).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_strings(v))).collect()),
        other => other,
    }
}

#[test]
fn seed_records_become_the_seed_rows_without_its_defects() {
    let mut runtime = GuestRuntime::with_cache(Some(crate::util::cache_dir())).unwrap();
    let transform = TransformRef::parse("builtin:ddb-json", Path::new(".")).unwrap();
    let settings =
        TableSettings { source_table: "streamer".into(), target_table: "data".into(), ..Default::default() };
    let mut guest = runtime.instantiate(&transform, settings, GuestLimits::default()).unwrap();

    for name in ["insert", "modify", "remove"] {
        let raw = json(&std::fs::read_to_string(seed_dir().join(format!("raw/{name}.json"))).unwrap());
        let seed = json(&std::fs::read_to_string(seed_dir().join(format!("parsed/{name}.json"))).unwrap());
        let payload = serde_json::to_vec(&raw).unwrap();
        let mut records = vec![ChangeRecords::default().record(payload, "seed".into(), "1".into())];
        let outcome = guest.transform(1, &mut records).unwrap().remove(0);
        let Outcome::Row(row) = outcome else { panic!("{name}: {outcome:?}") };

        assert_eq!(row.event_id, seed["event_id"].as_str().unwrap(), "{name}");
        assert_eq!(row.event_name, seed["last_event_name"].as_str().unwrap(), "{name}");
        assert_eq!(row.table, seed["table_name"].as_str().unwrap(), "{name}");
        assert_eq!(
            row.order.micros / 1000,
            seed["approx_creation_timestamp_millis"].as_u64().unwrap(),
            "{name}"
        );
        // 2: same key, one spelling.
        assert_eq!(json(&row.key), json(seed["keys"].as_str().unwrap()), "{name}");
        assert_eq!(row.key, r#"{"column1":"3120"}"#);
        assert_eq!(row.operation.is_delete(), seed["is_deleted"].as_bool().unwrap(), "{name}");
        assert_ne!(row.operation, Operation::TtlDelete);
        assert_eq!(row.error, None, "{name}: 5");
        // 1 and 4: the new image.
        match row.new_image {
            Some(image) => {
                assert_eq!(numbers_as_strings(json(&image)), json(seed["new_image"].as_str().unwrap()))
            }
            None => assert_eq!(seed["new_image"].as_str(), Some("{}"), "{name}: 4"),
        }
        // 3: the old image is the record's own.
        let old = raw["dynamodb"].get("OldImage");
        assert_eq!(row.old_image.is_some(), old.is_some(), "{name}");
        if name == "remove" {
            let ours = numbers_as_strings(json(row.old_image.as_deref().unwrap()));
            assert_eq!(ours, json(seed["old_image"].as_str().unwrap()));
        }
    }
}

#[test]
fn the_seed_stream_leaves_one_soft_deleted_row() {
    let dir = scratch();
    let records: Vec<String> = ["insert", "modify", "remove"]
        .iter()
        .map(|n| {
            json(&std::fs::read_to_string(seed_dir().join(format!("raw/{n}.json"))).unwrap()).to_string()
        })
        .collect();
    let manifest =
        pipeline(dir.path(), &records, 500, "[[tables]]\nsource = \"streamer\"\ntarget = \"data\"\n");
    run_ok(sluice().arg("run").arg(&manifest));
    let rows = dump(
        &dir.path().join("out.db"),
        "SELECT event_id, last_event_name, keys, new_image, is_deleted, approx_creation_timestamp_millis FROM data",
    );
    assert_eq!(
        rows,
        vec![vec![
            Some("492da627-7d69-4168-a6f0-534674ea5eba".into()),
            Some("REMOVE".into()),
            Some(r#"{"column1":"3120"}"#.into()),
            None,
            Some("1".into()),
            Some("1684190049329".into()),
        ]]
    );
}
