//! How a batch becomes requests to the Data API. No request holds more than
//! 40 statements or 100 KB of SQL: the Data API's documentation does not say
//! whether its 100 KB limit is per statement or per request, so sluice keeps
//! it per request, which satisfies both readings.
//!
//! Most batches fit one request: one transaction stages each target's rows in
//! a temporary table, applies them, and writes dead letters and checkpoints.
//! A batch that does not fit is staged in tables of its own
//! (`_sluice_stage_<pipeline>_<epoch>_<batch>_<n>`): with `[sink] staging`, a
//! target's rows are COPY'd from gzip JSON lines in S3, and when the COPYs
//! fit in the applying request they run in its transaction. Otherwise the
//! staging comes first, outside the transaction, the tables kept across
//! requests: rows are INSERTed through as many requests as needed, and a
//! value too large for one statement (a document of a 400 KB item) is
//! assembled piece by piece in a VARBYTE, then parsed. Then one transaction
//! applies the staged rows and writes the checkpoint. Only a
//! batch with rows for more target tables than 40 statements can apply takes
//! several transactions; the last writes the checkpoint, and replaying the
//! others is harmless (the ordering guard).

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use super::Config;
use super::sql::{self, Cell, MAX_BATCH_STATEMENTS, MAX_REQUEST_BYTES};
use crate::columns;
use crate::ident::quote;
use crate::record::{DeadLetter, DeleteMode, Row, SinkBatch};
use crate::sinks::{Fencing, SameEvent, TargetTable, json_line};

/// A staged row's tuple may take this much SQL; the largest values of a
/// longer one are sent in pieces.
const ROW_BYTES: usize = 60_000;
/// One INSERT statement's SQL, leaving room in its request for the fence.
const STATEMENT_BYTES: usize = 90_000;
/// COPY refuses a JSON object (a line of the staged file) over 4 MB; such a
/// row is INSERTed in pieces instead.
const COPY_MAX_LINE: usize = 4_000_000;

/// What the statements are written for.
pub(super) struct Layout<'a> {
    pub config: &'a Config,
    /// The quoted schema.
    pub schema: &'a str,
    pub targets: &'a HashMap<String, TargetTable>,
    pub pipeline: &'a str,
    pub epoch: i64,
    pub fencing: Fencing,
    /// The staging bucket's region, for COPY.
    pub region: Option<&'a str>,
    pub same_event: SameEvent,
}

/// One request: one transaction, the fence first.
#[derive(Debug, Default)]
pub(super) struct Request {
    pub statements: Vec<String>,
    /// Where counts of applicable rows are read: (1-based statement number,
    /// rows staged, the sink table).
    pub counts: Vec<(usize, u64, String)>,
}

impl Request {
    /// Its SQL, in bytes.
    fn bytes(&self) -> usize {
        self.statements.iter().map(String::len).sum()
    }
}

/// A batch's requests, in the order they run.
#[derive(Debug, Default)]
pub(super) struct Script {
    /// Gzip JSON-lines objects to put in S3 (key, bytes) first.
    pub uploads: Vec<(String, Vec<u8>)>,
    /// Requests that stage rows outside the batch's transaction.
    pub preload: Vec<Request>,
    /// The batch's transactions; the last one writes the checkpoints.
    pub apply: Vec<Request>,
}

/// Statements that must share a transaction, and where a count is read.
#[derive(Default)]
struct Unit {
    statements: Vec<String>,
    /// (index in `statements` of a count of applicable rows, rows staged,
    /// the sink table).
    count: Option<(usize, u64, String)>,
}

impl Unit {
    fn bytes(&self) -> usize {
        self.statements.iter().map(String::len).sum()
    }
}

/// Fills requests with units, each request starting with `fence`.
pub(super) struct Packer {
    fence: Option<String>,
    requests: Vec<Request>,
}

impl Packer {
    pub fn new(fence: Option<String>) -> Self {
        Packer { fence, requests: Vec::new() }
    }

    /// Adds statements that may go into any request, in order.
    pub fn statement(&mut self, statement: String) -> Result<()> {
        self.push(Unit { statements: vec![statement], count: None })
    }

    /// Adds statements that must share a request (and its transaction).
    pub fn together(&mut self, statements: Vec<String>) -> Result<()> {
        self.push(Unit { statements, count: None })
    }

    fn push(&mut self, unit: Unit) -> Result<()> {
        let fits = |r: &Request| {
            r.statements.len() + unit.statements.len() <= MAX_BATCH_STATEMENTS
                && r.bytes() + unit.bytes() <= MAX_REQUEST_BYTES
        };
        if !self.requests.last().is_some_and(fits) {
            let request = Request { statements: self.fence.iter().cloned().collect(), counts: Vec::new() };
            if !fits(&request) {
                bail!(
                    "internal error: {} statements of {} bytes cannot share one Data API request",
                    unit.statements.len(),
                    unit.bytes()
                );
            }
            self.requests.push(request);
        }
        let request = self.requests.last_mut().expect("a request");
        if let Some((at, staged, target)) = unit.count {
            request.counts.push((request.statements.len() + at + 1, staged, target));
        }
        request.statements.extend(unit.statements);
        Ok(())
    }

    pub fn finish(self) -> Vec<Request> {
        self.requests
    }
}

impl Layout<'_> {
    /// The batch's requests; see the module comment.
    pub fn script(&self, batch: &SinkBatch) -> Result<Script> {
        let mut groups: Vec<(&str, Vec<&Row>)> = Vec::new();
        for row in &batch.rows {
            match groups.iter_mut().find(|(t, _)| *t == &*row.target) {
                Some((_, group)) => group.push(row),
                None => groups.push((&row.target, vec![row])),
            }
        }
        let fence = self.fence(batch);
        if let Some(units) = self.inline(batch, &groups) {
            let statements: usize = units.iter().map(|u| u.statements.len()).sum();
            let bytes: usize = units.iter().map(Unit::bytes).sum();
            if statements < MAX_BATCH_STATEMENTS && bytes + fence.len() <= MAX_REQUEST_BYTES {
                let mut apply = Packer::new(Some(fence));
                for unit in units {
                    apply.push(unit)?;
                }
                return Ok(Script { apply: apply.finish(), ..Script::default() });
            }
        }
        self.staged(batch, &groups, fence)
    }

    /// The statement every request starts with: the check of the writer
    /// epoch or, for a coordinated worker, of the lease counter of every
    /// partition the batch checkpoints.
    fn fence(&self, batch: &SinkBatch) -> String {
        let leased: Vec<(&str, i64)> =
            batch.checkpoints.iter().filter_map(|c| Some((c.partition.as_str(), c.lease?))).collect();
        match self.fencing {
            Fencing::Epoch => sql::fence(self.schema, self.pipeline, self.epoch),
            // A batch without a checkpoint changes no partition's position.
            Fencing::Leases if leased.is_empty() => "SELECT 1".to_owned(),
            Fencing::Leases => sql::lease_fence(self.schema, self.pipeline, &leased),
        }
    }

    /// The whole batch as one transaction's units, or `None` if a row is too
    /// large to be sent inline.
    fn inline(&self, batch: &SinkBatch, groups: &[(&str, Vec<&Row>)]) -> Option<Vec<Unit>> {
        let s = self.schema;
        let mut units = Vec::new();
        for (i, (target, rows)) in groups.iter().enumerate() {
            let spec = &self.targets[*target];
            let columns = columns::sql_names(&spec.extras);
            let mut tuples = Vec::with_capacity(rows.len());
            for row in rows {
                let tuple = sql::tuple(&sql::cells(row, &spec.extras));
                if tuple.len() > ROW_BYTES {
                    return None;
                }
                tuples.push(tuple);
            }
            let stage = quote(&format!("{}_{}", self.config.staging_table, i + 1));
            let mut unit =
                Unit { statements: vec![sql::create_stage(s, &quote(target), &stage)], count: None };
            for run in sql::insert_runs(&columns, &tuples, STATEMENT_BYTES) {
                unit.statements.push(sql::insert(&stage, &columns, &tuples[run]));
            }
            self.apply(&mut unit, target, &stage, &columns, rows.len() as u64);
            units.push(unit);
        }
        units.push(self.inline_dead_letters(batch)?);
        units.push(self.inline_checkpoints(batch)?);
        Some(units)
    }

    /// The batch's dead letters as statements of the transaction, or `None`
    /// if they are too large for it.
    fn inline_dead_letters(&self, batch: &SinkBatch) -> Option<Unit> {
        let origins: Vec<&str> = batch.dead_letters.iter().map(|d| d.origin.as_str()).collect();
        let tuples: Vec<String> = batch
            .dead_letters
            .iter()
            .map(|d| sql::tuple(&sql::dead_letter_cells(self.pipeline, d)))
            .collect();
        self.inline_replace("_sluice_dead_letters", "origin", &origins, &sql::dead_letter_columns(), &tuples)
    }

    /// The batch's checkpoints as statements of the transaction, or `None`
    /// if they are too large for it.
    fn inline_checkpoints(&self, batch: &SinkBatch) -> Option<Unit> {
        let streams: Vec<&str> = batch.checkpoints.iter().map(|c| c.partition.as_str()).collect();
        let tuples: Vec<String> =
            batch.checkpoints.iter().map(|c| sql::checkpoint_tuple(self.pipeline, c, self.epoch)).collect();
        self.inline_replace("_sluice_checkpoints", "stream", &streams, &sql::checkpoint_columns(), &tuples)
    }

    /// Rows of one of sluice's tables replaced by key (`keys` of column
    /// `key`): a DELETE, then INSERTs of `tuples`; `None` if too large.
    fn inline_replace(
        &self,
        table: &str,
        key: &str,
        keys: &[&str],
        columns: &[String],
        tuples: &[String],
    ) -> Option<Unit> {
        let s = self.schema;
        let mut unit = Unit::default();
        if tuples.is_empty() {
            return Some(unit);
        }
        if tuples.iter().any(|t| t.len() > ROW_BYTES) {
            return None;
        }
        unit.statements.push(sql::replace_keyed(s, table, self.pipeline, key, keys));
        for run in sql::insert_runs(columns, tuples, STATEMENT_BYTES) {
            unit.statements.push(sql::insert(&format!("{s}.{table}"), columns, &tuples[run]));
        }
        (unit.bytes() <= STATEMENT_BYTES).then_some(unit)
    }

    /// Stages the batch in tables of its own, then applies it.
    fn staged(&self, batch: &SinkBatch, groups: &[(&str, Vec<&Row>)], fence: String) -> Result<Script> {
        let s = self.schema;
        let mut stager = Stager::new(self, batch.number, fence.clone());
        let mut apply = Packer::new(Some(fence));
        for (i, (target, rows)) in groups.iter().enumerate() {
            let stage = stager.table("stage", i + 1);
            let staged = stager.target(target, &stage, rows)?;
            let mut unit = Unit::default();
            self.apply(
                &mut unit,
                target,
                &format!("{s}.{stage}"),
                &columns::sql_names(&self.targets[*target].extras),
                staged,
            );
            apply.push(unit)?;
        }
        match self.inline_dead_letters(batch) {
            Some(unit) => apply.push(unit)?,
            None => {
                let stage = stager.table("dead", 0);
                stager.dead_letters(&stage, &batch.dead_letters)?;
                let mut statements = sql::replace_keyed_from(s, "_sluice_dead_letters", "origin", &stage);
                statements.push(sql::drop_stage(&format!("{s}.{stage}")));
                apply.push(Unit { statements, count: None })?;
            }
        }
        match self.inline_checkpoints(batch) {
            Some(unit) => apply.push(unit)?,
            None => {
                let stage = stager.table("checkpoints", 0);
                stager.checkpoints(&stage, batch)?;
                let mut statements = sql::replace_keyed_from(s, "_sluice_checkpoints", "stream", &stage);
                statements.push(sql::drop_stage(&format!("{s}.{stage}")));
                apply.push(Unit { statements, count: None })?;
            }
        }
        stager.finish(apply.finish())
    }

    /// Applies the rows staged in `stage` to `target`: drop those older than
    /// what is stored (and, in hard mode, than its tombstones), count what
    /// remains, replace; then drops the stage.
    fn apply(&self, unit: &mut Unit, target: &str, stage: &str, columns: &[String], staged: u64) {
        let s = self.schema;
        let t = quote(target);
        let hard = self.targets[target].deletes == DeleteMode::Hard;
        unit.statements.push(sql::drop_stale(s, &t, stage, self.same_event));
        if hard {
            unit.statements.push(sql::drop_older_than_tombstones(s, target, stage, self.same_event));
        }
        unit.count = Some((unit.statements.len(), staged, target.to_owned()));
        unit.statements.push(sql::count_applicable(stage));
        unit.statements.extend(sql::replace_rows(s, &t, stage, columns, hard));
        if hard {
            unit.statements.extend(sql::replace_tombstones(s, target, stage));
        }
        unit.statements.push(sql::drop_stage(stage));
    }
}

/// Builds the statements that stage a batch: in requests ahead of its
/// transaction, or within it when they fit ([`Stager::finish`]).
struct Stager<'a> {
    layout: &'a Layout<'a>,
    /// Names this batch's tables: pipeline, run epoch, batch.
    tag: String,
    preload: Packer,
    uploads: Vec<(String, Vec<u8>)>,
    /// The pieces table, once created, and the next value's number.
    pieces: Option<String>,
    next_value: usize,
}

impl<'a> Stager<'a> {
    fn new(layout: &'a Layout<'a>, batch: u64, fence: String) -> Self {
        Stager {
            tag: batch_tag(layout.pipeline, layout.epoch, batch),
            layout,
            preload: Packer::new(Some(fence)),
            uploads: Vec::new(),
            pieces: None,
            next_value: 0,
        }
    }

    /// The quoted name of one of this batch's tables.
    fn table(&self, kind: &str, n: usize) -> String {
        quote(&format!("_sluice_{kind}_{}_{n}", self.tag))
    }

    /// Stages a target's rows; returns how many.
    fn target(&mut self, target: &str, stage: &str, rows: &[&Row]) -> Result<u64> {
        let layout = self.layout;
        let s = layout.schema;
        let spec = &layout.targets[target];
        let columns = columns::sql_names(&spec.extras);
        self.preload.statement(sql::create_batch_table(s, &quote(target), stage))?;
        let copies = layout.config.staging.is_some() && layout.config.iam_role.is_some();
        let mut inserted = Vec::new();
        let mut lines = Vec::new();
        for row in rows {
            if copies {
                let line = json_line(row, &spec.extras, row.raw.kept().and_then(sql::raw_payload));
                if line.len() <= COPY_MAX_LINE {
                    lines.push(line);
                    continue;
                }
            }
            inserted.push(*row);
        }
        if !lines.is_empty() {
            let (staging, role) =
                (layout.config.staging.as_ref().expect("staging"), layout.config.iam_role.as_ref());
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for line in &lines {
                writeln!(gz, "{line}")?;
            }
            let key = staged_key(layout.pipeline, &self.tag, target);
            let uri = format!("{staging}{key}");
            let region = layout.region.expect("the staging bucket's region is known");
            let copy =
                sql::copy_stage(&format!("{s}.{stage}"), &columns, &uri, role.expect("a role"), region);
            self.uploads.push((key, gz.finish()?));
            self.preload.statement(copy)?;
        }
        let which = |row: &Row| {
            format!(
                "{s}.{stage}.table_name = {} AND {s}.{stage}.keys = {}",
                sql::literal(&row.change.table),
                sql::literal(&row.change.key)
            )
        };
        let staged: Vec<(Vec<Cell>, String)> =
            inserted.iter().map(|row| (sql::cells(row, &spec.extras), which(row))).collect();
        self.insert(stage, &columns, staged)?;
        Ok(rows.len() as u64)
    }

    fn dead_letters(&mut self, stage: &str, dead: &[DeadLetter]) -> Result<()> {
        let s = self.layout.schema;
        self.preload.statement(sql::create_batch_table(s, "_sluice_dead_letters", stage))?;
        let rows = dead
            .iter()
            .map(|d| {
                let cells = sql::dead_letter_cells(self.layout.pipeline, d);
                (cells, format!("{s}.{stage}.origin = {}", sql::literal(&d.origin)))
            })
            .collect();
        self.insert(stage, &sql::dead_letter_columns(), rows)
    }

    fn checkpoints(&mut self, stage: &str, batch: &SinkBatch) -> Result<()> {
        let (s, columns) = (self.layout.schema, sql::checkpoint_columns());
        self.preload.statement(sql::create_batch_table(s, "_sluice_checkpoints", stage))?;
        let tuples: Vec<String> = batch
            .checkpoints
            .iter()
            .map(|c| sql::checkpoint_tuple(self.layout.pipeline, c, self.layout.epoch))
            .collect();
        for run in sql::insert_runs(&columns, &tuples, STATEMENT_BYTES) {
            self.preload.statement(sql::insert(&format!("{s}.{stage}"), &columns, &tuples[run]))?;
        }
        Ok(())
    }

    /// INSERTs rows into a staging table; a row too long for one statement
    /// goes in without its largest values, which follow in pieces.
    fn insert(&mut self, stage: &str, columns: &[String], rows: Vec<(Vec<Cell>, String)>) -> Result<()> {
        let s = self.layout.schema;
        let mut tuples = Vec::with_capacity(rows.len());
        let mut large = Vec::new();
        for (mut cells, which) in rows {
            let mut tuple = sql::tuple(&cells);
            while tuple.len() > ROW_BYTES {
                let Some(i) = (0..cells.len())
                    .filter(|&i| cells[i].large.is_some())
                    .max_by_key(|&i| cells[i].sql.len())
                else {
                    bail!(
                        "a row takes {} bytes of SQL without its documents; Redshift cannot take it",
                        tuple.len()
                    );
                };
                let (bytes, kind) = cells[i].take().expect("a large value");
                large.push((bytes, kind, columns[i].clone(), which.clone()));
                tuple = sql::tuple(&cells);
            }
            tuples.push(tuple);
        }
        for run in sql::insert_runs(columns, &tuples, STATEMENT_BYTES) {
            self.preload.statement(sql::insert(&format!("{s}.{stage}"), columns, &tuples[run]))?;
        }
        for (bytes, kind, column, which) in large {
            let pieces = match &self.pieces {
                Some(pieces) => pieces.clone(),
                None => {
                    let pieces = self.table("pieces", 0);
                    self.preload.statement(sql::create_pieces(s, &pieces))?;
                    self.pieces = Some(pieces.clone());
                    pieces
                }
            };
            let n = self.next_value;
            self.next_value += 1;
            let mut chunks = bytes.chunks(sql::PIECE_BYTES);
            self.preload.statement(sql::first_piece(s, &pieces, n, chunks.next().unwrap_or_default()))?;
            for chunk in chunks {
                self.preload.statement(sql::next_piece(s, &pieces, n, chunk))?;
            }
            self.preload.statement(sql::fill_from_piece(s, stage, &column, kind, &pieces, n, &which))?;
        }
        Ok(())
    }

    /// The batch's plan: this staging, then `apply`. Staging that fits in
    /// the one applying request joins its transaction (as COPYs from S3
    /// usually do): a request fewer, and nothing left behind if it fails.
    fn finish(mut self, mut apply: Vec<Request>) -> Result<Script> {
        if let Some(pieces) = self.pieces.take() {
            self.preload.statement(sql::drop_stage(&format!("{}.{pieces}", self.layout.schema)))?;
        }
        let mut preload = self.preload.finish();
        if let ([stage], [transaction]) = (preload.as_slice(), apply.as_slice()) {
            // Both start with the fence; the joined request keeps one.
            let statements = stage.statements.len() + transaction.statements.len() - 1;
            if statements <= MAX_BATCH_STATEMENTS && stage.bytes() + transaction.bytes() <= MAX_REQUEST_BYTES
            {
                let stage = preload.pop().expect("one staging request");
                let transaction = apply.pop().expect("one transaction");
                let shift = stage.statements.len() - 1;
                apply.push(Request {
                    counts: transaction.counts.into_iter().map(|(at, n, t)| (at + shift, n, t)).collect(),
                    statements: stage
                        .statements
                        .into_iter()
                        .chain(transaction.statements.into_iter().skip(1))
                        .collect(),
                });
            }
        }
        Ok(Script { uploads: self.uploads, preload, apply })
    }
}

/// Names one batch's staging tables: a digest of the pipeline's name (names
/// are short), the run's writer epoch (a crashed run's leftovers never mix
/// with a later run's) and the batch number.
pub(super) fn batch_tag(pipeline: &str, epoch: i64, batch: u64) -> String {
    format!("{}_{epoch}_{batch}", pipeline_tag(pipeline))
}

/// Where a batch's rows for `target` are staged, under the staging prefix.
fn staged_key(pipeline: &str, tag: &str, target: &str) -> String {
    format!("{pipeline}/batch-{tag}/{target}.json.gz")
}

/// The staged objects a writer removes after a commit: all of the
/// pipeline's or, for a coordinated worker (`epoch`: its writer number),
/// only its own, since the other workers stage theirs beside them.
pub(super) fn staged_prefix(pipeline: &str, epoch: Option<i64>) -> String {
    match epoch {
        None => format!("{pipeline}/"),
        Some(epoch) => format!("{pipeline}/batch-{}_{epoch}_", pipeline_tag(pipeline)),
    }
}

/// The part of a batch tag that names the pipeline.
pub(super) fn pipeline_tag(pipeline: &str) -> String {
    let digest = Sha256::digest(pipeline.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! Every statement the sink can send, parsed with sqlparser's Redshift
    //! dialect; every request within the Data API's budget; and the SQL of
    //! sample batches kept in `golden/` (long values shortened).

    use std::path::Path;

    use sqlparser::dialect::RedshiftSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;
    use crate::objects::S3Prefix;
    use crate::record::{Change, Checkpoint, Column, Operation, Order, Value};
    use crate::sinks::redshift::{Auth, Compute};

    fn config(staging: bool) -> Config {
        Config {
            database: "dev".into(),
            compute: Compute::Workgroup("wg1".into()),
            auth: Auth::SecretArn("arn:aws:secretsmanager:us-east-1:1:secret:x".into()),
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
            raw: crate::record::Raw::Kept(br#"{"eventID":"e","note":"it's"}"#.to_vec()),
            origin: format!("stream.jsonl:{micros}"),
        }
    }

    fn targets(n: usize) -> HashMap<String, TargetTable> {
        let mut targets = HashMap::new();
        targets.insert("orders_cdc".to_owned(), TargetTable { deletes: DeleteMode::Soft, extras: vec![] });
        targets.insert(
            "other_cdc".to_owned(),
            TargetTable { deletes: DeleteMode::Hard, extras: vec!["s3_uri".into()] },
        );
        for i in 0..n {
            targets.insert(format!("t{i}"), TargetTable { deletes: DeleteMode::Soft, extras: vec![] });
        }
        targets
    }

    /// The sample batch: two targets, one of them in hard mode with an extra
    /// column, a dead letter and a checkpoint; `note` bytes in the first
    /// row's document, `copies` copies of the other rows under new keys.
    fn sample(note: usize, copies: usize) -> SinkBatch {
        let uri = Column { name: "s3_uri".into(), value: Value::Text("s3://docs/a.json".into()) };
        let mut big = row("orders_cdc", "a", 1_000_001, Operation::Upsert, vec![]);
        if note > 0 {
            big.change.new_image = Some(format!(r#"{{"id":"a","note":"{}"}}"#, "x".repeat(note)));
        }
        let mut rows = vec![big];
        for i in 0..copies.max(1) {
            let suffix = if i == 0 { String::new() } else { i.to_string() };
            rows.push(row("orders_cdc", &format!("b{suffix}"), 1_000_002, Operation::Delete, vec![]));
            rows.push(row("other_cdc", &format!("c{suffix}"), 1_000_003, Operation::TtlDelete, vec![]));
            rows.push(row(
                "other_cdc",
                &format!("d{suffix}"),
                1_000_004,
                Operation::Upsert,
                vec![uri.clone()],
            ));
        }
        SinkBatch {
            number: 3,
            rows,
            checkpoints: vec![Checkpoint {
                partition: "stream.jsonl".into(),
                position: r#"{"offset":9,"line":4}"#.into(),
                lease: None,
            }],
            dead_letters: vec![DeadLetter {
                table: Some("orders".into()),
                origin: "stream.jsonl:2".into(),
                reason: "not JSON: 'x'".into(),
                raw: b"x\\y".to_vec(),
            }],
            ..Default::default()
        }
    }

    fn layout_script(staging: bool, targets: &HashMap<String, TargetTable>, batch: &SinkBatch) -> Script {
        fenced_script(Fencing::Epoch, staging, targets, batch)
    }

    fn fenced_script(
        fencing: Fencing,
        staging: bool,
        targets: &HashMap<String, TargetTable>,
        batch: &SinkBatch,
    ) -> Script {
        let config = config(staging);
        let layout = Layout {
            config: &config,
            schema: "\"cdc\"",
            targets,
            pipeline: "demo",
            epoch: 7,
            fencing,
            region: Some("eu-west-1"),
            same_event: SameEvent::Keeps,
        };
        let planned = layout.script(batch).unwrap();
        for request in planned.preload.iter().chain(&planned.apply) {
            let bytes = request.bytes();
            assert!(
                request.statements.len() <= MAX_BATCH_STATEMENTS,
                "{} statements",
                request.statements.len()
            );
            assert!(bytes <= MAX_REQUEST_BYTES, "a request of {bytes} bytes of SQL");
            request.statements.iter().for_each(|s| assert_redshift(s));
        }
        planned
    }

    /// The script as text, statements over 400 bytes shortened.
    fn render(script: &Script) -> String {
        let mut text = String::new();
        for (key, body) in &script.uploads {
            let mut lines = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut lines).unwrap();
            text += &format!("-- staged s3://stage-bucket/sluice/{key} ({} rows)\n", lines.lines().count());
        }
        let requests = [("staging request", &script.preload), ("transaction", &script.apply)];
        for (what, list) in requests {
            for (i, request) in list.iter().enumerate() {
                text += &format!("-- {what} {} of {}; counts at {:?}\n", i + 1, list.len(), request.counts);
                for statement in &request.statements {
                    match statement.char_indices().nth(400) {
                        Some((cut, _)) => {
                            text += &format!("{}… ({} bytes);\n", &statement[..cut], statement.len())
                        }
                        None => text += &format!("{statement};\n"),
                    }
                }
            }
        }
        text
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
            panic!("not Redshift SQL ({e}):\n{}", statement.chars().take(2000).collect::<String>());
        }
    }

    #[test]
    fn a_small_batch_is_one_transaction() {
        let plan = layout_script(false, &targets(0), &sample(0, 1));
        assert!(plan.preload.is_empty() && plan.uploads.is_empty());
        assert_eq!(plan.apply.len(), 1);
        golden("batch-inserts", &render(&plan));
    }

    #[test]
    fn a_batch_too_large_for_a_request_goes_through_s3_and_copy() {
        let plan = layout_script(true, &targets(0), &sample(60_000, 300));
        assert_eq!(plan.uploads.len(), 2, "one object per target");
        assert!(plan.preload.is_empty(), "the COPYs join the transaction");
        assert_eq!(plan.apply.len(), 1, "applied in one transaction");
        let statements = &plan.apply[0].statements;
        let copies = statements.iter().filter(|s| s.starts_with("COPY"));
        assert!(copies.clone().all(|s| s.ends_with("REGION 'eu-west-1'")));
        assert_eq!(copies.count(), 2);
        for (at, _, _) in &plan.apply[0].counts {
            assert!(statements[at - 1].starts_with("SELECT COUNT("), "counts are read where they are made");
        }
        golden("batch-copy", &render(&plan));
    }

    #[test]
    fn staging_that_cannot_share_the_transactions_request_runs_first() {
        // Twelve targets: their COPYs fit one request, applying them needs
        // several transactions.
        let targets = targets(12);
        let mut batch = sample(0, 1);
        batch.rows = (0..12)
            .flat_map(|t| (0..30).map(move |k| (t, k)))
            .map(|(t, k)| {
                let mut row =
                    row(&format!("t{t}"), &format!("k{k}"), 1_000_000 + k, Operation::Upsert, vec![]);
                row.change.new_image = Some(format!(r#"{{"id":"k{k}","note":"{}"}}"#, "x".repeat(1_000)));
                row
            })
            .collect();
        let plan = layout_script(true, &targets, &batch);
        assert_eq!(plan.uploads.len(), 12);
        assert_eq!(plan.preload.len(), 1, "the stages and COPYs in one request");
        assert!(plan.apply.len() > 1, "{} transactions", plan.apply.len());
        let last = plan.apply.last().unwrap();
        assert!(last.statements.iter().any(|s| s.contains("_sluice_checkpoints")));
        assert!(plan.apply.iter().all(|r| r.statements.iter().all(|s| !s.starts_with("COPY"))));
    }

    #[test]
    fn without_staging_a_large_batch_is_staged_over_several_requests_then_applied_at_once() {
        // A document of a 400 KB item: far larger than one request.
        let plan = layout_script(false, &targets(0), &sample(400_000, 300));
        assert!(plan.uploads.is_empty());
        assert!(plan.preload.len() > 5, "{} staging requests", plan.preload.len());
        assert_eq!(plan.apply.len(), 1, "applied in one transaction");
        let statements: Vec<&String> = plan.preload.iter().flat_map(|r| &r.statements).collect();
        let pieces = statements.iter().filter(|s| s.contains("SET body = body ||")).count();
        assert!(pieces >= 400_000 / sql::PIECE_BYTES, "{pieces} pieces");
        assert!(statements.iter().any(|s| s.contains("SET new_image = JSON_PARSE(")));
        let last = plan.apply.last().unwrap();
        assert!(last.statements.iter().any(|s| s.contains("_sluice_checkpoints")));
        golden("batch-staged", &render(&plan));
    }

    #[test]
    fn sixty_four_shards_positions_take_two_statements() {
        let mut batch = sample(0, 1);
        batch.checkpoints = (0..64)
            .map(|i| Checkpoint {
                partition: format!("cdc-stream/shardId-{i:012}"),
                position: format!(
                    r#"{{"after":"49590338271490256608559692538361571095921575989136588{i:03}","ended":false}}"#
                ),
                lease: None,
            })
            .collect();
        let plan = layout_script(false, &targets(0), &batch);
        assert_eq!(plan.apply.len(), 1);
        let checkpoint_statements =
            plan.apply[0].statements.iter().filter(|s| s.contains("_sluice_checkpoints")).count();
        assert_eq!(checkpoint_statements, 2);
    }

    #[test]
    fn fifty_target_tables_are_applied_within_the_statement_budget() {
        let targets = targets(50);
        let mut batch = sample(0, 1);
        batch.rows =
            (0..50).map(|i| row(&format!("t{i}"), "k", 1_000_000 + i, Operation::Upsert, vec![])).collect();
        let plan = layout_script(false, &targets, &batch);
        assert!(plan.apply.len() > 1);
        let last = plan.apply.last().unwrap();
        assert!(last.statements.iter().any(|s| s.contains("_sluice_checkpoints")));
        let applied = plan.apply.iter().flat_map(|r| &r.counts).count();
        assert_eq!(applied, 50, "each target's rows are counted once");
    }

    #[test]
    fn ddl_for_fifty_targets_is_split_into_requests() {
        let mut packer = Packer::new(None);
        let s = "\"cdc\"";
        for statement in sql::state_tables(s) {
            packer.statement(statement).unwrap();
        }
        for i in 0..50 {
            packer.statement(sql::create_target(s, &quote(&format!("t{i}")))).unwrap();
        }
        let requests = packer.finish();
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|r| r.statements.len() <= MAX_BATCH_STATEMENTS));
    }

    #[test]
    fn a_coordinated_worker_removes_only_its_own_staged_objects() {
        let ours = staged_key("demo", &batch_tag("demo", 7, 3), "orders_cdc");
        let theirs = staged_key("demo", &batch_tag("demo", 71, 3), "orders_cdc");
        assert!(ours.starts_with(&staged_prefix("demo", Some(7))), "{ours}");
        assert!(!theirs.starts_with(&staged_prefix("demo", Some(7))), "{theirs}");
        assert!([ours, theirs].iter().all(|k| k.starts_with(&staged_prefix("demo", None))));
    }

    #[test]
    fn a_coordinated_workers_batch_is_fenced_by_each_partitions_lease_counter() {
        let mut batch = sample(0, 1);
        batch.checkpoints = [("orders/shardId-0", 4), ("orders/shardId-1", 9)]
            .map(|(p, lease)| Checkpoint { partition: p.into(), position: "{}".into(), lease: Some(lease) })
            .to_vec();
        let plan = fenced_script(Fencing::Leases, false, &targets(0), &batch);
        let fence = &plan.apply[0].statements[0];
        assert_eq!(
            fence,
            &sql::lease_fence("\"cdc\"", "demo", &[("orders/shardId-0", 4), ("orders/shardId-1", 9)])
        );
        assert!(fence.contains("WHEN 'orders/shardId-1' THEN 9"), "{fence}");
        // Each checkpoint row records the counter it was read under.
        let text = plan.apply[0].statements.join("\n");
        assert!(text.contains("'orders/shardId-1', '{}', 9, GETDATE()"), "{text}");
    }

    #[test]
    fn every_other_statement_is_redshift_sql() {
        let s = "\"cdc\"";
        let mut statements = sql::state_tables(s);
        statements.push(sql::create_target(s, "\"orders_cdc\""));
        statements.push(sql::add_column(s, "\"orders_cdc\"", "s3_uri", "VARCHAR(65535)"));
        statements.extend(sql::claim_epoch(s, "demo"));
        statements.extend(sql::claim_lease(s, "demo", "orders/shardId-000000000000", 4));
        statements.push(sql::leases_of(
            s,
            "demo",
            &["orders/shardId-000000000000", "orders/shardId-000000000001"],
        ));
        statements.push(sql::columns_of("cdc", &["orders_cdc", "other_cdc"]));
        statements.push(sql::checkpoints(s, "demo"));
        statements.push(sql::tables_in("cdc"));
        statements.push(sql::row_counts(s, "\"orders_cdc\""));
        statements.push(sql::tombstone_count(s, "orders_cdc"));
        statements.push(sql::newest_rows(s, "\"orders_cdc\"", 3));
        statements.push(sql::dead_letter_count(s, "demo"));
        statements.push(sql::recent_dead_letters(s, "demo"));
        for role in ["arn:aws:iam::1:role/r", "default"] {
            statements.push(sql::copy_stage(
                "\"tmp_1\"",
                &["keys".into()],
                "s3://b/k.json.gz",
                role,
                "us-east-1",
            ));
        }
        golden("ddl-and-queries", &statements.iter().map(|s| format!("{s};\n")).collect::<String>());
        statements.iter().for_each(|s| assert_redshift(s));
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(sql::literal(r"it's a \ test"), r"'it''s a \\ test'");
    }

    #[test]
    fn bytes_go_as_hex_in_varchar_sized_literals() {
        assert_eq!(sql::hex(b""), "FROM_HEX('')");
        assert_eq!(sql::hex(b"\x00\xffA"), "FROM_HEX('00ff41')");
        let long = sql::hex(&[7u8; 40_000]);
        assert_eq!(long.matches("FROM_HEX(").count(), 2);
        let digits = long.split("FROM_HEX('").skip(1).map(|part| part.split('\'').next().unwrap().len());
        assert!(digits.clone().all(|n| n <= 65_534), "{:?}", digits.collect::<Vec<_>>());
    }

    #[test]
    fn longest_string_counts_unescaped_bytes() {
        assert_eq!(sql::longest_string(r#"{"ab":"c\"d","x":"\u00e9\n"}"#), 3);
        assert_eq!(sql::longest_string(r#"["\ud83d\ude00"]"#), 4);
    }
}
