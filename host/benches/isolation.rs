//! What a poison record costs: a 500-record batch with one record the
//! transform loops on (or panics on), through the test-faults build of
//! `ddb-json`, with the default guest limits. Prints how long finding and
//! isolating it took and how many calls it needed, side by side for a loop
//! and a panic.
//!
//! Run with `cargo bench -p sluice --bench isolation`.

use std::time::Instant;

use sluice::generator::{self, GenOptions};
use sluice::guest::{GuestLimits, GuestRuntime, TableSettings, TransformRef};
use sluice::record::{Outcome, SourceRecord};
use sluice::sources::ChangeRecords;

const BATCH: usize = 500;

fn main() -> anyhow::Result<()> {
    let generated = generator::generate(&GenOptions {
        changes: BATCH,
        tables: vec!["orders".into()],
        duplicates: 0.0,
        ..Default::default()
    });
    let mut runtime = GuestRuntime::with_cache(None)?;
    let faulty = env!("SLUICE_TEST_FAULTS_WASM");
    let transform = TransformRef::parse(faulty, ".".as_ref()).map_err(anyhow::Error::msg)?;
    let limits = GuestLimits::default();
    println!(
        "{BATCH} records with one poison record in the middle; {} ms per record, at most {} ms per call\n",
        limits.record_budget.as_millis(),
        limits.time_budget.as_millis()
    );
    println!("{:<8} {:>10} {:>14}", "poison", "seconds", "dead-lettered");
    for fault in ["loop", "panic"] {
        let settings = TableSettings {
            source_table: "orders".into(),
            target_table: "orders".into(),
            ..Default::default()
        };
        let mut guest = runtime.instantiate(&transform, settings, limits)?;
        let mut changes = ChangeRecords::default();
        let mut records: Vec<SourceRecord> = generated
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| changes.record(r.as_bytes().to_vec(), "bench".into(), (i + 1).to_string()))
            .collect();
        let poisoned = String::from_utf8(records[BATCH / 2].payload.clone())?;
        let start = poisoned.find(r#""eventID":""#).expect("an event id") + 11;
        let end = start + poisoned[start..].find('"').expect("a closing quote");
        records[BATCH / 2].payload =
            format!("{}sluice-fault:{fault}{}", &poisoned[..start], &poisoned[end..]).into_bytes();
        let began = Instant::now();
        let outcomes = guest.transform(1, &mut records)?;
        let took = began.elapsed();
        let failed = outcomes.iter().filter(|o| matches!(o, Outcome::Fault(_))).count();
        println!("{fault:<8} {:>10.2} {failed:>14}", took.as_secs_f64());
    }
    Ok(())
}
