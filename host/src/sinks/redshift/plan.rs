//! How a batch becomes transactions: units of statements that must share a
//! transaction (a staging table's whole life; dead letters; the
//! checkpoint), packed into parts of at most 40 statements.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::Result;

use super::dead_letter;
use super::sql::{self, MAX_BATCH_STATEMENTS, MAX_REQUEST_BYTES, MAX_STATEMENT_BYTES, MAX_VARCHAR};
use crate::ident::quote;
use crate::manifest::RedshiftPlan;
use crate::record::{DeadLetter, DeleteMode, Row, SinkBatch};
use crate::sinks::{COLUMNS, TargetTable};

/// The INSERT statements one staging table may take, in bytes, leaving
/// room in the request for the statements around them. Beyond this the
/// rows go through S3 and COPY (or, without staging, into more tables).
const MAX_STAGE_BYTES: usize = MAX_REQUEST_BYTES - 200_000;

/// What the statements are written for.
pub(super) struct Layout<'a> {
    pub plan: &'a RedshiftPlan,
    /// The quoted schema.
    pub schema: &'a str,
    pub targets: &'a HashMap<String, TargetTable>,
    pub pipeline: &'a str,
    pub epoch: i64,
}

/// Statements that must share a transaction, and what to read afterwards.
pub(super) struct Unit {
    pub statements: Vec<String>,
    /// Index in `statements` of the count of applicable rows, and how many
    /// rows were staged.
    pub count: Option<(usize, u64)>,
    /// A gzip JSON-lines object to put in S3 (key, bytes) before the statements run.
    pub upload: Option<(String, Vec<u8>)>,
}

/// One transaction: its statements (the fence first), and where the
/// counts of applied rows are (1-based statement number, rows staged).
pub(super) struct Part {
    pub statements: Vec<String>,
    pub counts: Vec<(usize, u64)>,
    pub uploads: Vec<(String, Vec<u8>)>,
}

impl Layout<'_> {
    /// Splits a batch into units of statements; see the module comment.
    fn units(&self, batch: &SinkBatch, rows: &[&Row], dead: &mut Vec<DeadLetter>) -> Result<Vec<Unit>> {
        let s = self.schema;
        let mut units = Vec::new();
        let mut by_target: Vec<(&str, Vec<&Row>)> = Vec::new();
        for row in rows {
            match by_target.iter_mut().find(|(t, _)| *t == &*row.target) {
                Some((_, group)) => group.push(row),
                None => by_target.push((&row.target, vec![row])),
            }
        }
        let mut stage_number = 0;
        for (target, group) in by_target {
            let spec = &self.targets[target];
            let columns: Vec<String> =
                COLUMNS.iter().map(|c| c.to_string()).chain(spec.extras.iter().map(|e| quote(e))).collect();
            let raw = |row: &Row| {
                std::str::from_utf8(&row.raw).ok().filter(|r| r.len() <= MAX_VARCHAR).map(str::to_owned)
            };
            let tuples: Vec<String> =
                group.iter().map(|r| sql::tuple(r, &spec.extras, raw(r).as_deref())).collect();
            let oversize = |t: &String| t.len() > MAX_STATEMENT_BYTES / 2;
            let insert_bytes: usize = tuples.iter().map(|t| t.len() + 2).sum();
            // One staging table's statements; `load` fills it.
            let mut stage_unit = |load: &dyn Fn(&str) -> Vec<String>, staged: u64, upload| {
                stage_number += 1;
                let stage = quote(&format!("{}_{stage_number}", self.plan.staging_table));
                let t = quote(target);
                let hard = spec.deletes == DeleteMode::Hard;
                let mut statements = vec![sql::create_stage(s, &t, &stage)];
                statements.extend(load(&stage));
                statements.push(sql::drop_stale(s, &t, &stage));
                if hard {
                    statements.push(sql::drop_older_than_tombstones(s, target, &stage));
                }
                let count_at = statements.len();
                statements.push(sql::count_applicable(&stage));
                statements.extend(sql::replace_rows(s, &t, &stage, &columns, hard));
                if hard {
                    statements.extend(sql::replace_tombstones(s, target, &stage));
                }
                statements.push(sql::drop_stage(&stage));
                units.push(Unit { statements, count: Some((count_at, staged)), upload });
            };
            match (&self.plan.staging, &self.plan.iam_role) {
                (Some(staging), Some(role))
                    if tuples.iter().any(oversize) || insert_bytes > MAX_STAGE_BYTES =>
                {
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    for r in &group {
                        writeln!(gz, "{}", crate::sinks::json_line(r, &spec.extras, raw(r).as_deref()))?;
                    }
                    let key = format!(
                        "{}{}/batch-{}/{target}.json.gz",
                        staging.prefix, self.pipeline, batch.number
                    );
                    let uri = format!("s3://{}/{key}", staging.bucket);
                    let load = |stage: &str| vec![sql::copy_stage(stage, &columns, &uri, role)];
                    stage_unit(&load, group.len() as u64, Some((key, gz.finish()?)));
                }
                _ => {
                    // Without staging: a row that fits no INSERT is a dead
                    // letter; the rest take as many staging tables as needed.
                    let mut fits = Vec::new();
                    for (row, tuple) in group.iter().zip(tuples) {
                        if oversize(&tuple) {
                            dead.push(dead_letter(
                                row,
                                format!(
                                    "the row takes {} bytes as SQL, too much for a Data API statement; \
                                     set [sink] staging (and iam_role) to load it with COPY",
                                    tuple.len()
                                ),
                            ));
                        } else {
                            fits.push(tuple);
                        }
                    }
                    let runs = sql::insert_runs(&columns, &fits);
                    let bytes = |r: &std::ops::Range<usize>| {
                        fits[r.clone()].iter().map(|t| t.len() + 2).sum::<usize>()
                    };
                    let mut stages: Vec<Vec<std::ops::Range<usize>>> = Vec::new();
                    for run in runs {
                        let full = stages.last().is_none_or(|st| {
                            st.len() + 6 >= MAX_BATCH_STATEMENTS
                                || st.iter().map(&bytes).sum::<usize>() + bytes(&run) > MAX_STAGE_BYTES
                        });
                        if full {
                            stages.push(Vec::new());
                        }
                        stages.last_mut().expect("a stage").push(run);
                    }
                    for chunk in &stages {
                        let staged = chunk.iter().map(|r| r.len() as u64).sum();
                        let load = |stage: &str| {
                            chunk.iter().map(|r| sql::insert(stage, &columns, &fits[r.clone()])).collect()
                        };
                        stage_unit(&load, staged, None);
                    }
                }
            }
        }
        let tuples: Vec<String> = dead
            .iter()
            .map(|d| {
                let raw = sql::RawText::new(&d.raw);
                sql::dead_letter_tuple(self.pipeline, &d.origin, d.table.as_deref(), &d.reason, &raw)
            })
            .collect();
        for run in sql::insert_runs(&sql::dead_letter_columns(), &tuples) {
            let origins: Vec<&str> = dead[run.clone()].iter().map(|d| d.origin.as_str()).collect();
            let statements = sql::replace_dead_letters(s, self.pipeline, &origins, &tuples[run]);
            units.push(Unit { statements, count: None, upload: None });
        }
        let mut checkpoints = Vec::new();
        for c in &batch.checkpoints {
            checkpoints.extend(sql::checkpoint(s, self.pipeline, &c.stream, &c.position, self.epoch));
        }
        units.push(Unit { statements: checkpoints, count: None, upload: None });
        Ok(units)
    }

    /// The batch's transactions.
    pub fn parts(&self, batch: &SinkBatch, rows: &[&Row], dead: &mut Vec<DeadLetter>) -> Result<Vec<Part>> {
        let mut parts: Vec<Part> = Vec::new();
        let size = |statements: &[String]| statements.iter().map(String::len).sum::<usize>();
        for unit in self.units(batch, rows, dead)? {
            let fits = parts.last().is_some_and(|p| {
                p.statements.len() + unit.statements.len() <= MAX_BATCH_STATEMENTS
                    && size(&p.statements) + size(&unit.statements) <= MAX_REQUEST_BYTES
            });
            if !fits {
                parts.push(Part {
                    statements: vec![sql::fence(self.schema, self.pipeline, self.epoch)],
                    counts: Vec::new(),
                    uploads: Vec::new(),
                });
            }
            let part = parts.last_mut().expect("a part");
            if let Some((at, staged)) = unit.count {
                part.counts.push((part.statements.len() + at + 1, staged));
            }
            part.statements.extend(unit.statements);
            part.uploads.extend(unit.upload);
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    //! Every statement the sink can send, parsed with sqlparser's Redshift
    //! dialect, and the exact SQL of sample batches kept in `golden/`.

    use std::path::Path;

    use sqlparser::dialect::RedshiftSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;
    use crate::manifest::{RedshiftAuth, RedshiftCompute, S3Prefix};
    use crate::record::{Change, Checkpoint, Column, Operation, Order, Value};

    fn plan(staging: bool) -> RedshiftPlan {
        RedshiftPlan {
            database: "dev".into(),
            compute: RedshiftCompute::Workgroup("wg".into()),
            auth: RedshiftAuth::SecretArn("arn:aws:secretsmanager:us-east-1:1:secret:x".into()),
            schema: "cdc".into(),
            iam_role: staging.then(|| "arn:aws:iam::1:role/copy".into()),
            staging: staging.then(|| S3Prefix { bucket: "stage-bucket".into(), prefix: "sluice/".into() }),
            staging_table: "tmp".into(),
            super_max_string_bytes: 65535,
        }
    }

    fn row(target: &str, key: &str, micros: u64, operation: Operation, extra: Vec<Column>) -> Row {
        let deleted = operation.is_delete();
        Row {
            target: target.into(),
            change: Change {
                table: "orders".into(),
                key: format!(r#"{{"id":"{key}"}}"#),
                operation,
                order: Order { micros, tiebreak: "42".into() },
                event_name: if deleted { "REMOVE" } else { "MODIFY" }.into(),
                event_id: format!("e-{key}"),
                new_image: (!deleted)
                    .then(|| format!(r#"{{"id":"{key}","note":"it's a \"test\" \\ ok","n":1.50}}"#)),
                old_image: Some(format!(r#"{{"id":"{key}"}}"#)),
                error: None,
                extra,
            },
            raw: br#"{"eventID":"e","note":"it's"}"#.to_vec(),
            origin: format!("stream.jsonl:{micros}"),
        }
    }

    fn layout_sql(staging: bool, name: &str, big_note: usize) -> Vec<String> {
        let plan = plan(staging);
        let mut targets = HashMap::new();
        targets.insert("orders_cdc".to_owned(), TargetTable { deletes: DeleteMode::Soft, extras: vec![] });
        targets.insert(
            "other_cdc".to_owned(),
            TargetTable { deletes: DeleteMode::Hard, extras: vec!["s3_uri".into()] },
        );
        let layout = Layout { plan: &plan, schema: "\"cdc\"", targets: &targets, pipeline: "demo", epoch: 7 };
        let uri = Column { name: "s3_uri".into(), value: Value::Text("s3://docs/a.json".into()) };
        let mut big = row("orders_cdc", "a", 1_000_001, Operation::Upsert, vec![]);
        if big_note > 0 {
            big.change.new_image = Some(format!(r#"{{"id":"a","note":"{}"}}"#, "x".repeat(big_note)));
        }
        let rows = [
            big,
            row("orders_cdc", "b", 1_000_002, Operation::Delete, vec![]),
            row("other_cdc", "c", 1_000_003, Operation::TtlDelete, vec![]),
            row("other_cdc", "d", 1_000_004, Operation::Upsert, vec![uri]),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let batch = SinkBatch {
            number: 3,
            checkpoints: vec![Checkpoint {
                stream: "stream.jsonl".into(),
                position: r#"{"offset":9,"line":4}"#.into(),
            }],
            ..Default::default()
        };
        let mut dead = vec![DeadLetter {
            table: Some("orders".into()),
            origin: "stream.jsonl:2".into(),
            reason: "not JSON: 'x'".into(),
            raw: b"x\\y".to_vec(),
        }];
        let parts = layout.parts(&batch, &refs, &mut dead).unwrap();
        let mut text = String::new();
        for (i, part) in parts.iter().enumerate() {
            text += &format!(
                "-- transaction {} of {}; counts at statements {:?}\n",
                i + 1,
                parts.len(),
                part.counts
            );
            for (key, body) in &part.uploads {
                text += &format!("-- staged s3://stage-bucket/{key} ({} rows)\n", {
                    let mut lines = String::new();
                    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut lines)
                        .unwrap();
                    lines.lines().count()
                });
            }
            for statement in &part.statements {
                text += &format!("{statement};\n");
            }
        }
        golden(name, &text);
        parts.into_iter().flat_map(|p| p.statements).collect()
    }

    /// Compares with `golden/<name>.sql`; `SLUICE_BLESS=1` rewrites it.
    fn golden(name: &str, text: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/sinks/redshift/golden")
            .join(format!("{name}.sql"));
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(&path, text).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(expected == text, "{} differs (SLUICE_BLESS=1 rewrites it):\n{text}", path.display());
    }

    fn assert_redshift(statement: &str) {
        if let Err(e) = Parser::parse_sql(&RedshiftSqlDialect {}, statement) {
            panic!("not Redshift SQL ({e}):\n{statement}");
        }
    }

    #[test]
    fn a_batch_through_inserts_is_one_transaction_of_redshift_sql() {
        let statements = layout_sql(false, "batch-inserts", 0);
        assert!(statements.len() <= MAX_BATCH_STATEMENTS);
        statements.iter().for_each(|s| assert_redshift(s));
    }

    #[test]
    fn a_row_too_large_for_a_statement_goes_through_s3_and_copy() {
        let statements = layout_sql(true, "batch-copy", 60_000);
        assert_eq!(statements.iter().filter(|s| s.starts_with("COPY")).count(), 1);
        statements.iter().for_each(|s| assert_redshift(s));
    }

    #[test]
    fn without_staging_a_row_too_large_for_a_statement_is_a_dead_letter() {
        let statements = layout_sql(false, "batch-too-large", 60_000);
        let dead = statements.iter().find(|s| s.contains("_sluice_dead_letters (pipeline")).unwrap();
        assert!(dead.contains("too much for a Data API statement"), "{dead}");
    }

    #[test]
    fn every_other_statement_is_redshift_sql() {
        let s = "\"cdc\"";
        let mut statements = sql::state_tables(s);
        statements.push(sql::create_target(s, "\"orders_cdc\""));
        statements.push(sql::add_column(s, "\"orders_cdc\"", "s3_uri", "VARCHAR(65535)"));
        statements.extend(sql::claim_epoch(s, "demo"));
        statements.push(sql::columns_of("cdc", &["orders_cdc", "other_cdc"]));
        statements.push(sql::checkpoints(s, "demo"));
        statements.push(sql::tables_in("cdc"));
        statements.push(sql::row_counts(s, "\"orders_cdc\""));
        statements.push(sql::tombstone_count(s, "orders_cdc"));
        statements.push(sql::newest_rows(s, "\"orders_cdc\"", 3));
        statements.push(sql::dead_letter_count(s, "demo"));
        statements.push(sql::recent_dead_letters(s, "demo"));
        statements.push(sql::copy_stage(
            "\"tmp_1\"",
            &["keys".into()],
            "s3://b/k.json.gz",
            "arn:aws:iam::1:role/r",
        ));
        statements.push(sql::copy_stage("\"tmp_1\"", &["keys".into()], "s3://b/k.json.gz", "default"));
        golden("ddl-and-queries", &statements.iter().map(|s| format!("{s};\n")).collect::<String>());
        statements.iter().for_each(|s| assert_redshift(s));
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(sql::literal(r"it's a \ test"), r"'it''s a \\ test'");
    }

    #[test]
    fn longest_string_counts_unescaped_bytes() {
        assert_eq!(sql::longest_string(r#"{"ab":"c\"d","x":"\u00e9\n"}"#), 3);
        assert_eq!(sql::longest_string(r#"["\ud83d\ude00"]"#), 4);
    }
}
