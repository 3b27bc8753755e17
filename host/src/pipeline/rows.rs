//! One batch through the guests: records in, rows and dead letters out.
//! (The guests' own `transform` runs in [`crate::guest`].)

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::router::Router;
use super::summary::TableSummary;
use super::{checks, dedupe};
use crate::record::{
    Batch, DeadLetter, Format, MAX_MESSAGE_BYTES, Outcome, Raw, RawPayload, Row, SinkBatch, SourceRecord,
    message,
};
use crate::sinks::SinkConfig;

pub(super) struct Transformed {
    pub sink: SinkBatch,
    pub superseded: u64,
    /// What became of each DynamoDB table's records.
    pub tables: Vec<(Arc<str>, TableSummary)>,
    /// When each stream change that became a row was made (microseconds),
    /// for the commit lag.
    pub change_micros: Vec<u64>,
}

/// Rows the sink would refuse become dead letters first; then sinks that
/// record history get every distinct change, the others only the latest per
/// item. In that order, a refused change never hides an earlier valid one.
pub(super) fn batch(router: &mut Router, batch: Batch, sink_config: &SinkConfig) -> Result<Transformed> {
    let mut sink = SinkBatch {
        number: batch.number,
        records: batch.records.len() as u64,
        checkpoints: batch.checkpoints,
        ..Default::default()
    };

    // Group by DynamoDB table, keeping arrival order within each group.
    let mut groups: Vec<(Arc<str>, Vec<SourceRecord>)> = Vec::new();
    for record in batch.records {
        match &record.table {
            Ok(table) => match groups.iter_mut().find(|(t, _)| t == table) {
                Some((_, records)) => records.push(record),
                None => groups.push((table.clone(), vec![record])),
            },
            Err(e) => {
                let reason = e.to_string();
                sink.dead_letters.push(dead(None, record, reason))
            }
        }
    }

    let mut rows = Vec::new();
    let mut tables = Vec::new();
    let mut change_micros = Vec::new();
    for (name, mut records) in groups {
        let table = &*name;
        let mut stats = TableSummary { read: records.len() as u64, ..Default::default() };
        let dead_before = sink.dead_letters.len();
        let Some(routed) = router.guest(table)? else {
            for record in records {
                let reason =
                    format!("table {table:?} has no [[tables]] entry and the manifest has no [defaults]");
                sink.dead_letters.push(dead(Some(table), record, reason));
            }
            stats.dead_lettered = stats.read;
            tables.push((name, stats));
            continue;
        };
        let began = Instant::now();
        let outcomes = routed.guest.transform(batch.number, &mut records)?;
        stats.in_transform = began.elapsed();
        for (record, outcome) in records.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Row(mut change) => match checks::check(&change, table) {
                    Ok(()) => {
                        if matches!(record.format, Format::StreamChange) {
                            change_micros.push(change.order.micros);
                        }
                        // The transform's message about the row: kept, storable everywhere.
                        change.error = change.error.map(|e| message(&e, MAX_MESSAGE_BYTES));
                        let row = Row {
                            target: routed.target.clone(),
                            change,
                            origin: record.origin(),
                            raw: Raw::Kept(record.payload),
                        };
                        match sink_config.refuses(&row) {
                            // A refused record keeps its bytes, whatever the table's raw_payload.
                            Some(reason) => sink.dead_letters.push(DeadLetter::new(
                                Some(table),
                                row.origin,
                                &reason,
                                row.raw.kept().unwrap_or_default().to_vec(),
                            )),
                            None if routed.raw_payload == RawPayload::Drop => {
                                rows.push(Row { raw: Raw::Dropped { bytes: row.raw.len() }, ..row })
                            }
                            None => rows.push(row),
                        }
                    }
                    Err(why) => sink.dead_letters.push(dead(
                        Some(table),
                        record,
                        format!("the transform returned an unusable row: {why}"),
                    )),
                },
                Outcome::Skip(reason) => {
                    stats.skipped += 1;
                    tracing::debug!(table, origin = record.origin(), "skipped: {reason}");
                }
                Outcome::Error(reason) => sink.dead_letters.push(dead(Some(table), record, reason)),
                Outcome::Fault(reason) => {
                    stats.guest_faults += 1;
                    sink.dead_letters.push(dead(Some(table), record, reason))
                }
            }
        }
        stats.dead_lettered = (sink.dead_letters.len() - dead_before) as u64;
        tables.push((name, stats));
    }
    let (rows, superseded) = dedupe::for_sink(rows, sink_config.capabilities().keeps_every_change);
    sink.rows = rows;
    let faults: u64 = tables.iter().map(|(_, s)| s.guest_faults).sum();
    if faults > 0 {
        tracing::warn!(
            batch = batch.number,
            faults,
            "the transform failed on records; they are dead-lettered"
        );
    }
    Ok(Transformed { sink, superseded, tables, change_micros })
}

fn dead(table: Option<&str>, record: SourceRecord, reason: String) -> DeadLetter {
    DeadLetter::new(table, record.origin(), &reason, record.payload)
}
