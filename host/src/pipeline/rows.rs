//! One batch through the guests: records in, rows and dead letters out.
//! (The guests' own `transform` runs in [`crate::guest`].)

use anyhow::Result;

use super::router::Router;
use super::{checks, dedupe};
use crate::record::{
    Batch, DeadLetter, Format, MAX_MESSAGE_BYTES, Outcome, Row, SinkBatch, SourceRecord, message,
};
use crate::sinks::SinkConfig;

pub(super) struct Transformed {
    pub sink: SinkBatch,
    pub skipped: u64,
    pub superseded: u64,
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
    let mut skipped = 0;

    // Group by DynamoDB table, keeping arrival order within each group.
    let mut groups: Vec<(String, Vec<SourceRecord>)> = Vec::new();
    for record in batch.records {
        let table = match &record.format {
            Format::StreamChange => ddb_core::table_name(&record.payload),
            Format::ExportLine(export) => Ok(export.table.clone()),
        };
        match table {
            Ok(table) => match groups.iter_mut().find(|(t, _)| *t == table) {
                Some((_, records)) => records.push(record),
                None => groups.push((table, vec![record])),
            },
            Err(e) => {
                sink.dead_letters.push(dead(None, record, format!("cannot read the record's tableName: {e}")))
            }
        }
    }

    let mut rows = Vec::new();
    for (table, mut records) in groups {
        let Some((target, guest)) = router.guest(&table)? else {
            for record in records {
                let reason =
                    format!("table {table:?} has no [[tables]] entry and the manifest has no [defaults]");
                sink.dead_letters.push(dead(Some(&table), record, reason));
            }
            continue;
        };
        let results = guest.transform(batch.number, &mut records)?;
        for (record, result) in records.into_iter().zip(results) {
            match result {
                Ok(Outcome::Row(mut change)) => match checks::check(&change, &table) {
                    Ok(()) => {
                        // The transform's message about the row: kept, storable everywhere.
                        change.error = change.error.map(|e| message(&e, MAX_MESSAGE_BYTES));
                        let row = Row {
                            target: target.clone(),
                            change,
                            origin: record.origin(),
                            raw: record.payload,
                        };
                        match sink_config.refuses(&row) {
                            None => rows.push(row),
                            Some(reason) => sink.dead_letters.push(DeadLetter::new(
                                Some(&table),
                                row.origin,
                                &reason,
                                row.raw,
                            )),
                        }
                    }
                    Err(why) => sink.dead_letters.push(dead(
                        Some(&table),
                        record,
                        format!("the transform returned an unusable row: {why}"),
                    )),
                },
                Ok(Outcome::Skip(reason)) => {
                    skipped += 1;
                    tracing::debug!(table, origin = record.origin(), "skipped: {reason}");
                }
                Ok(Outcome::Error(reason)) | Err(reason) => {
                    sink.dead_letters.push(dead(Some(&table), record, reason))
                }
            }
        }
    }
    let (rows, superseded) = if sink_config.capabilities().keeps_every_change {
        dedupe::distinct_changes(rows)
    } else {
        dedupe::latest_per_item(rows)
    };
    sink.rows = rows;
    Ok(Transformed { sink, skipped, superseded })
}

fn dead(table: Option<&str>, record: SourceRecord, reason: String) -> DeadLetter {
    DeadLetter::new(table, record.origin(), &reason, record.payload)
}
