//! `builtin:ddb-json`, the default transform: DynamoDB stream records and
//! export lines in, plain-JSON rows out.
//!
//! All decoding lives in `ddb-core`, tested natively, and reaches guests
//! through `sluice-guest` (`guests/sdk`), which every Rust guest builds on:
//! this is the smallest complete one. `sluice guest new` starts yours.

use sluice_guest::{Guest, Outcome, SourceRecord, TableConfig};

struct DdbJson;

impl Guest for DdbJson {
    fn configure(config: TableConfig) -> Result<(), String> {
        #[cfg(feature = "test-faults")]
        let config = faults::take_tag(config);
        if let Some(s) = config.settings.first() {
            return Err(format!("ddb-json has no settings, but was given {:?}", s.name));
        }
        sluice_guest::remember(config)
    }

    fn transform(records: Vec<SourceRecord>) -> Vec<Outcome> {
        #[cfg(feature = "test-faults")]
        if let Some(outcomes) = faults::inject(&records) {
            return outcomes;
        }
        let outcomes = records.into_iter().map(outcome);
        #[cfg(feature = "test-faults")]
        let outcomes = outcomes.map(faults::tagged);
        outcomes.collect()
    }
}

fn outcome(record: SourceRecord) -> Outcome {
    match sluice_guest::decode(record) {
        Ok(row) => Outcome::Row(row),
        Err(why) => Outcome::Error(why),
    }
}

#[cfg(feature = "test-faults")]
mod faults {
    //! Guest failures on demand, so the host's isolation can be tested.
    use super::*;

    fn has(r: &SourceRecord, what: &str) -> bool {
        let marker = format!("\"eventID\":\"sluice-fault:{what}\"");
        r.payload.windows(marker.len()).any(|w| w == marker.as_bytes())
    }

    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

    /// A setting `tag` gives every row a text column `tag` of that value:
    /// a transform whose output changes with its settings.
    pub fn take_tag(mut config: TableConfig) -> TableConfig {
        if let Some(i) = config.settings.iter().position(|s| s.name == "tag") {
            let _ = TAG.set(config.settings.remove(i).value);
        }
        config
    }

    pub fn tagged(outcome: Outcome) -> Outcome {
        match (outcome, TAG.get()) {
            (Outcome::Row(mut row), Some(tag)) => {
                row.extra.push(sluice_guest::Column {
                    name: "tag".into(),
                    value: sluice_guest::Value::Text(tag.clone()),
                });
                Outcome::Row(row)
            }
            (other, _) => other,
        }
    }

    pub fn inject(records: &[SourceRecord]) -> Option<Vec<Outcome>> {
        if records.iter().any(|r| has(r, "wrong-table")) {
            return Some(
                records
                    .iter()
                    .map(|r| match outcome(r.clone()) {
                        Outcome::Row(mut row) if has(r, "wrong-table") => {
                            row.table = "somewhere_else".into();
                            Outcome::Row(row)
                        }
                        other => other,
                    })
                    .collect(),
            );
        }
        if records.iter().any(|r| has(r, "probe")) {
            return Some(
                records
                    .iter()
                    .map(|r| if has(r, "probe") { Outcome::Error(probe()) } else { outcome(r.clone()) })
                    .collect(),
            );
        }
        for r in records {
            let has = |what: &str| has(r, what);
            if has("loop") {
                #[allow(clippy::empty_loop)]
                loop {}
            }
            if has("alloc") {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            if has("spin") {
                // Busy for 20 ms of wall time: a guest that is running when
                // the host is descheduled.
                let began = std::time::Instant::now();
                while began.elapsed() < std::time::Duration::from_millis(20) {
                    std::hint::spin_loop();
                }
            }
            if has("panic") {
                panic!("the test guest was told to panic");
            }
            if has("miscount") {
                return Some(Vec::new());
            }
        }
        None
    }

    /// What the sandbox lets a guest reach: nothing, the host's tests expect.
    fn probe() -> String {
        let files = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind());
        let env = std::env::vars().count();
        let args = std::env::args().count();
        let net = std::net::TcpStream::connect("127.0.0.1:80").map(drop).map_err(|e| e.kind());
        format!("probe: files={files:?} env={env} args={args} net={net:?}")
    }
}

sluice_guest::export!(DdbJson);
