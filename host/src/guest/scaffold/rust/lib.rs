//! A sluice transform: DynamoDB change records in, rows out.
//!
//! As written it decodes exactly as `builtin:ddb-json` does; change `row`
//! to change what reaches the sink. `./build` makes the component, and
//! `sluice guest test "$(./build | tail -1)" cases` checks it.

use sluice_guest::{Guest, Outcome, Row, SourceRecord, TableConfig};

struct Transform;

impl Guest for Transform {
    /// Called once per instance with the table's `[[tables]]` entry; an
    /// error stops the pipeline with its message.
    fn configure(config: TableConfig) -> Result<(), String> {
        if let Some(setting) = config.settings.first() {
            return Err(format!("this transform has no settings, but was given {:?}", setting.name));
        }
        sluice_guest::remember(config)
    }

    /// Exactly one outcome per record, in order.
    fn transform(records: Vec<SourceRecord>) -> Vec<Outcome> {
        records
            .into_iter()
            .map(|record| match sluice_guest::decode(record) {
                Ok(row) => row_for_the_sink(row),
                Err(why) => Outcome::Error(why),
            })
            .collect()
    }
}

/// Where to change rows: drop attributes from the images, add columns
/// (`row.extra`), or skip records with `Outcome::Skip(reason)`.
fn row_for_the_sink(row: Row) -> Outcome {
    Outcome::Row(row)
}

sluice_guest::export!(Transform);
