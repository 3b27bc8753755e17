//! Amazon Redshift through the Redshift Data API: the mission's target.
//!
//! A batch is checked against the writer epoch, staged (each target's rows
//! in a table of their own), applied (staged rows older than what is stored
//! are dropped, the rest replace the stored ones), and committed with its
//! dead letters and checkpoints. `script.rs` fits that into requests of at
//! most 40 statements and 100 KB of SQL: one request for almost every
//! batch, large ones COPY'd from S3 within it; without S3, staging requests
//! first (INSERTs with large values sent in pieces), then the transaction.
//!
//! Values Redshift would refuse (a SUPER over 16 MB, a SUPER string over
//! the configured limit, a VARCHAR over its width) are refused before the
//! batch is reduced (`refuses`), so they become dead letters. The raw record
//! of a row is kept only when it fits in `raw_payload`'s VARCHAR(65535); a
//! longer one is left NULL, with its size still in `raw_payload_size_bytes`,
//! rather than costing the row. Dead letters keep their whole record (VARBYTE).

mod client;
mod config;
mod script;
mod sql;

use std::collections::HashMap;

use anyhow::{Result, anyhow};

use super::retry::retrying;
use super::{
    Applied, Asked, Claims, Fenced, Fencing, Inspector, LeaseLost, Rows, SameEvent, Sink, SinkError, Status,
    TableStatus, TargetTable, Writer, missing_columns, nul_in_document, nul_in_text,
};
pub use config::{Auth, Compute, Config, DEFAULT_MAX_COALESCE, MAX_PARTITION_BYTES, Section};

use crate::columns;
use crate::ident::quote;
use crate::objects::{Access, Location, ObjectStore};
use crate::record::{Checkpoint, DeleteMode, Row, SinkBatch};
use client::{DataApi, ResultRows, StatementFailed, Submission};
use script::{Layout, Packer, Request};
use sql::{MAX_SUPER, MAX_VARCHAR};

const DEAD_LETTERS: &str = "_sluice_dead_letters";

pub struct RedshiftSink {
    config: Config,
    /// The quoted schema.
    schema: String,
    api: DataApi,
    /// Where large batches are staged for COPY, if anywhere.
    staging: Option<ObjectStore>,
    /// The staging bucket's region, which COPY must be told.
    region: Option<String>,
    pipeline: String,
    /// The writer epoch this run claimed. A coordinated worker's names its
    /// staging only: its batches are fenced by lease counters.
    epoch: i64,
    fencing: Fencing,
    targets: HashMap<String, TargetTable>,
    same_event: SameEvent,
    /// The checkpoints read when the epoch was claimed, for the first
    /// [`Sink::checkpoints`].
    resume: Option<Vec<Checkpoint>>,
    /// The last commit, its applied counts read with the next batch or at
    /// [`Sink::settle`].
    unread: Option<Unread>,
}

impl RedshiftSink {
    /// Opens the sink: creates what is missing, claims the writer epoch and
    /// clears what a crashed run left behind.
    pub fn open(config: &Config, writer: &Writer) -> Result<Self> {
        let staging = match &config.staging {
            Some(at) => Some(ObjectStore::open(&Location::S3(at.clone()))?),
            None => None,
        };
        let mut sink = RedshiftSink {
            schema: quote(&config.schema),
            api: DataApi::new(config),
            staging,
            region: None,
            config: config.clone(),
            pipeline: String::new(),
            epoch: 0,
            fencing: writer.fencing,
            targets: HashMap::new(),
            same_event: writer.same_event,
            resume: None,
            unread: None,
        };
        sink.prepare(writer.pipeline, writer.targets)?;
        Ok(sink)
    }

    fn prepare(&mut self, pipeline: &str, targets: &[(String, DeleteMode)]) -> Result<()> {
        self.pipeline = pipeline.to_owned();
        let mut ddl = sql::state_tables(&self.schema);
        ddl.extend(targets.iter().map(|(t, _)| sql::create_target(&self.schema, &quote(t))));
        // The claim, and what start-up reads once it holds, follow the DDL
        // in its last request; their results are read at once. Each request
        // is a round trip to a warehouse that may be far away.
        let mut names: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
        names.push(DEAD_LETTERS);
        let mut claim = sql::claim_epoch(&self.schema, pipeline);
        claim.push(sql::checkpoints(&self.schema, pipeline));
        claim.push(sql::tables_in(&self.config.schema));
        claim.push(sql::columns_of(&self.config.schema, &names));
        let mut packer = Packer::new(None);
        for statement in ddl {
            packer.statement(statement)?;
        }
        packer.together(claim)?;
        let mut requests = packer.finish();
        let last = requests.pop().expect("the claim's request");
        for request in &requests {
            self.run("creating sluice's tables", &request.statements)?;
        }
        let finished =
            self.run("creating sluice's tables and claiming the writer epoch", &last.statements)?;
        let n = last.statements.len();
        let ids = [n - 3, n - 2, n - 1, n].map(|at| format!("{finished}:{at}"));
        let [epoch, checkpoints, tables, columns]: [_; 4] = self
            .read_each("reading the writer epoch and checkpoints", &ids)?
            .try_into()
            .expect("four results");
        self.epoch = first_number(&epoch).ok_or_else(|| anyhow!("Redshift returned no writer epoch"))?;
        self.resume = Some(parse_checkpoints(checkpoints));
        self.keep_old_dead_letters(&columns)?;
        for (name, deletes) in targets {
            let extras = columns
                .iter()
                .filter(|r| cell(r, 0) == Some(name.as_str()))
                .filter_map(|r| cell(r, 1).map(str::to_owned))
                .filter(|c| !columns::is_standard(c))
                .collect();
            self.targets.insert(name.clone(), TargetTable { deletes: *deletes, extras });
        }
        if let Some(staging) = &self.staging {
            staging.check(&[Access::List, Access::Put, Access::Delete], &format!("{pipeline}/probe"))?;
        }
        self.region = match &self.staging {
            Some(staging) => staging.region()?,
            None => None,
        };
        self.drop_leftover_stages(tables)?;
        self.clean_staging()
    }

    /// Runs statements as one transaction, retrying transient failures.
    fn run(&mut self, what: &str, statements: &[String]) -> Result<String> {
        let mut submission = Submission::new(statements);
        retrying(self, what, |sink| sink.api.run(&mut submission), |_| {})
    }

    fn query(&mut self, what: &str, statement: &str) -> Result<ResultRows> {
        query(&mut self.api, what, statement)
    }

    fn add_columns(&mut self, rows: &[&Row]) -> Result<()> {
        for (target, column, value) in missing_columns(rows.iter().copied(), &self.targets) {
            let ty = sql::extra_type(value).expect("missing columns have values");
            let statement = sql::add_column(&self.schema, &quote(target), column, ty);
            self.run(&format!("adding column {column} to {target}"), &[statement])?;
            self.targets.get_mut(target).expect("targets are prepared").extras.push(column.to_owned());
        }
        Ok(())
    }

    /// Runs one of a batch's requests (fenced); its counts are yet to read.
    fn run_request(&mut self, what: &str, request: &Request, leased: &[(&str, i64)]) -> Result<Unread> {
        match self.run(what, &request.statements) {
            Ok(id) => Ok(Unread::new(&id, request)),
            Err(e) => Err(self.fenced(e, leased)),
        }
    }

    /// Reads what a request applied.
    fn applied(&mut self, unread: &Unread) -> Result<Applied> {
        Ok(unread.applied(self.read_each("reading what a batch applied", &unread.ids)?))
    }

    /// The rows of finished statements (`<id>:<n>`), read at once, retrying
    /// transient failures.
    fn read_each(&mut self, what: &str, ids: &[String]) -> Result<Vec<ResultRows>> {
        retrying(self, what, |sink| sink.api.rows_of_each(ids), |_| {})
    }

    /// Runs statements that need no common transaction, as few requests as
    /// the budget allows.
    fn run_all(&mut self, what: &str, statements: Vec<String>) -> Result<()> {
        let mut packer = Packer::new(None);
        for statement in statements {
            packer.statement(statement)?;
        }
        for request in packer.finish() {
            self.run(what, &request.statements)?;
        }
        Ok(())
    }

    /// Dead letters used to keep at most 40 KB of their record, as text; now
    /// they keep all of it, as VARBYTE. A table of the old layout (which the
    /// DDL left as it was) is renamed, so nothing in it is lost, and a new
    /// one created beside it. `columns` are (table, column) rows of
    /// information_schema.
    fn keep_old_dead_letters(&mut self, columns: &[Vec<Option<String>>]) -> Result<()> {
        let old_layout =
            columns.iter().any(|r| cell(r, 0) == Some(DEAD_LETTERS) && cell(r, 1) == Some("raw_encoding"));
        if old_layout {
            tracing::warn!(
                "_sluice_dead_letters has the layout of an older sluice; renaming it to \
                 _sluice_dead_letters_v1 and creating a new one"
            );
            let rename =
                format!("ALTER TABLE {}._sluice_dead_letters RENAME TO _sluice_dead_letters_v1", self.schema);
            self.run("renaming the old dead-letter table", &[rename])?;
            self.run_all("creating the dead-letter table", sql::state_tables(&self.schema))?;
        }
        Ok(())
    }

    /// Drops the staging tables a crashed run of this pipeline left behind
    /// (named after an older writer epoch); `tables` are the schema's. Not
    /// for a coordinated worker: the other workers' are in use.
    fn drop_leftover_stages(&mut self, tables: ResultRows) -> Result<()> {
        if self.fencing == Fencing::Leases {
            return Ok(());
        }
        let ours = format!("_{}_", script::pipeline_tag(&self.pipeline));
        let current = format!("{ours}{}_", self.epoch);
        let leftovers: Vec<String> = tables
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .filter(|t| t.starts_with("_sluice_") && t.contains(&ours) && !t.contains(&current))
            .map(|t| sql::drop_stage(&format!("{}.{}", self.schema, quote(&t))))
            .collect();
        if !leftovers.is_empty() {
            tracing::info!(tables = leftovers.len(), "dropping staging tables a crashed run left behind");
        }
        self.run_all("dropping old staging tables", leftovers)
    }

    /// When a request's first statement (the fence) fails, whether a newer
    /// run has claimed the pipeline, or a newer lease counter one of the
    /// `leased` partitions: read from the tables, not from the error's text.
    fn fenced(&mut self, e: anyhow::Error, leased: &[(&str, i64)]) -> anyhow::Error {
        if e.downcast_ref::<StatementFailed>().is_none_or(|f| f.index != Some(0)) {
            return e;
        }
        if self.fencing == Fencing::Leases {
            return match lease_lost(&mut self.api, &self.schema, &self.pipeline, leased) {
                Some(lost) => lost.into(),
                None => e,
            };
        }
        let epoch = sql::writer_epoch(&self.schema, &self.pipeline);
        let theirs = self.query("reading the writer epoch", &epoch).ok().and_then(|rows| first_number(&rows));
        match theirs {
            Some(theirs) if theirs != self.epoch => {
                Fenced { pipeline: self.pipeline.clone(), ours: self.epoch, theirs }.into()
            }
            _ => e,
        }
    }

    /// Removes staged objects under this pipeline's prefix: after a commit,
    /// and at start for those a crashed run left behind. A coordinated
    /// worker removes only its own: the other workers' are in use.
    fn clean_staging(&mut self) -> Result<()> {
        let ours = (self.fencing == Fencing::Leases).then_some(self.epoch);
        match &self.staging {
            Some(staging) => staging.delete_prefix(&script::staged_prefix(&self.pipeline, ours)),
            None => Ok(()),
        }
    }
}

impl Sink for RedshiftSink {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError> {
        if let Some(read) = self.resume.take() {
            return Ok(read);
        }
        let rows = self.query("reading checkpoints", &sql::checkpoints(&self.schema, &self.pipeline))?;
        Ok(parse_checkpoints(rows))
    }

    fn write(&mut self, batch: &SinkBatch) -> Result<Applied, SinkError> {
        let rows: Vec<&Row> = batch.rows.iter().collect();
        self.add_columns(&rows)?;
        let layout = Layout {
            config: &self.config,
            schema: &self.schema,
            targets: &self.targets,
            pipeline: &self.pipeline,
            epoch: self.epoch,
            fencing: self.fencing,
            region: self.region.as_deref(),
            same_event: self.same_event,
        };
        let script = layout.script(batch)?;
        if !script.preload.is_empty() || script.apply.len() > 1 {
            tracing::info!(
                batch = batch.number,
                staged = script.preload.len(),
                transactions = script.apply.len(),
                "the batch is too large for one request"
            );
        }
        let staged = !script.uploads.is_empty();
        for (key, body) in script.uploads {
            self.staging.as_ref().expect("uploads only with staging").put(&key, body)?;
        }
        // What the previous batch applied is read while this one runs: on a
        // distant warehouse, a commit then costs one round trip, not two.
        let previous = self.unread.take().map(|u| (self.api.rows_of_each_later(u.ids.clone()), u));
        let what = format!("writing batch {}", batch.number);
        let leased: Vec<(&str, i64)> =
            batch.checkpoints.iter().filter_map(|c| Some((c.partition.as_str(), c.lease?))).collect();
        for request in &script.preload {
            self.run_request(&what, request, &leased)?;
        }
        let mut applied = Applied { dead_lettered: batch.dead_letters.len() as u64, ..Default::default() };
        let last = script.apply.len() - 1;
        for (i, request) in script.apply.iter().enumerate() {
            if i == last {
                fail::fail_point!("sink::before_commit", |_| std::process::abort());
                self.unread = Some(self.run_request(&what, request, &leased)?);
            } else {
                let unread = self.run_request(&what, request, &leased)?;
                applied += self.applied(&unread)?;
            }
        }
        fail::fail_point!("sink::after_commit", |_| std::process::abort());
        if let Some((reading, unread)) = previous {
            applied += match crate::aws::block_on(reading) {
                Ok(Ok(rows)) => unread.applied(rows),
                // Failed or cut short: read again, retrying.
                _ => self.applied(&unread)?,
            };
        }
        if staged {
            self.clean_staging()?;
        }
        Ok(applied)
    }

    fn settle(&mut self) -> Result<Applied, SinkError> {
        match self.unread.take() {
            Some(unread) => Ok(self.applied(&unread)?),
            None => Ok(Applied::default()),
        }
    }
}

/// Claims partitions for a coordinated worker, on a Data API client of its own.
pub struct RedshiftClaims {
    api: DataApi,
    /// The quoted schema.
    schema: String,
    pipeline: String,
}

impl RedshiftClaims {
    pub fn open(config: &Config, pipeline: &str) -> Result<Self> {
        Ok(RedshiftClaims {
            api: DataApi::new(config),
            schema: quote(&config.schema),
            pipeline: pipeline.into(),
        })
    }
}

impl Claims for RedshiftClaims {
    fn claim(&mut self, partition: &str, lease: i64) -> Result<Option<Checkpoint>, SinkError> {
        let statements = sql::claim_lease(&self.schema, &self.pipeline, partition, lease);
        let mut submission = Submission::new(&statements);
        let what = format!("claiming {partition}");
        let read = retrying(
            &mut self.api,
            &what,
            |api| {
                let id = api.run(&mut submission)?;
                api.rows(&format!("{id}:{}", statements.len()))
            },
            |_| {},
        );
        match read {
            Ok(rows) => Ok(parse_checkpoints(rows).pop().map(|c| Checkpoint { lease: Some(lease), ..c })),
            // The second statement is the fence.
            Err(e) if e.downcast_ref::<StatementFailed>().is_some_and(|f| f.index == Some(1)) => {
                match lease_lost(&mut self.api, &self.schema, &self.pipeline, &[(partition, lease)]) {
                    Some(lost) => Err(SinkError::LeaseLost(lost)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The first of `leased` (partition, lease counter) that a newer counter
/// has claimed, as stored; `None` if none has, or it cannot be read.
fn lease_lost(api: &mut DataApi, s: &str, pipeline: &str, leased: &[(&str, i64)]) -> Option<LeaseLost> {
    let partitions: Vec<&str> = leased.iter().map(|(p, _)| *p).collect();
    let rows = query(api, "reading the lease counters", &sql::leases_of(s, pipeline, &partitions)).ok()?;
    rows.iter().find_map(|r| {
        let (partition, theirs) = (cell(r, 0)?, cell(r, 1)?.parse::<i64>().ok()?);
        let ours = leased.iter().find(|(p, _)| *p == partition)?.1;
        (theirs > ours).then(|| LeaseLost { partition: partition.to_owned(), ours, theirs })
    })
}

/// A committed request whose counts of applied rows are not read yet.
struct Unread {
    /// The sub-statements that count, as `<id>:<n>`.
    ids: Vec<String>,
    /// For each: rows staged, the sink table.
    staged: Vec<(u64, String)>,
}

impl Unread {
    fn new(id: &str, request: &Request) -> Self {
        Unread {
            ids: request.counts.iter().map(|(at, ..)| format!("{id}:{at}")).collect(),
            staged: request.counts.iter().map(|(_, staged, target)| (*staged, target.clone())).collect(),
        }
    }

    /// The counts, from the rows of `ids`.
    fn applied(&self, rows: Vec<ResultRows>) -> Applied {
        let mut applied = Applied::default();
        for ((staged, target), rows) in self.staged.iter().zip(rows) {
            let number = |i: usize| rows.first().and_then(|r| cell(r, i)).and_then(|v| v.parse().ok());
            let (deleted, upserted): (u64, u64) = (number(0).unwrap_or(0), number(1).unwrap_or(0));
            *applied.target(target) += Rows { upserted, deleted, stale: staged - upserted - deleted };
        }
        applied
    }
}

/// `sluice status` on Redshift: SELECTs only, each result row bounded (the
/// Data API returns at most 64 KB per row), and tables that do not exist yet
/// read as empty.
pub struct Inspect {
    api: DataApi,
    config: Config,
}

impl Inspect {
    pub fn open(config: &Config) -> Result<Self> {
        Ok(Inspect { api: DataApi::new(config), config: config.clone() })
    }

    fn query(&mut self, what: &str, statement: &str) -> Result<ResultRows> {
        query(&mut self.api, what, statement)
    }
}

impl Inspector for Inspect {
    fn status(&mut self, asked: &Asked) -> Result<Status> {
        let Asked { pipeline, targets, sample_rows } = *asked;
        let s = quote(&self.config.schema);
        let existing: Vec<String> = self
            .query("listing tables", &sql::tables_in(&self.config.schema))?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let exists = |name: &str| existing.iter().any(|t| t == name);
        let mut status = Status::default();
        if exists("_sluice_checkpoints") {
            for r in self.query("reading checkpoints", &sql::checkpoints(&s, pipeline))? {
                if let [Some(stream), Some(position), at] = r.as_slice() {
                    status.checkpoints.push((
                        stream.clone(),
                        position.clone(),
                        at.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        let first_number = |rows: &[Vec<Option<String>>], i: usize| {
            rows.first().and_then(|r| cell(r, i)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        for (name, _) in targets {
            if !exists(name) {
                continue;
            }
            let t = quote(name);
            let counts = self.query("counting rows", &sql::row_counts(&s, &t))?;
            let tombstones = match exists("_sluice_tombstones") {
                true => first_number(&self.query("counting tombstones", &sql::tombstone_count(&s, name))?, 0),
                false => 0,
            };
            let sample = self
                .query("reading rows", &sql::newest_rows(&s, &t, sample_rows))?
                .into_iter()
                .map(|r| {
                    let deleted = r.get(1).cloned().flatten().is_some_and(|d| d == "true" || d == "t");
                    let preview = match (r.get(2).cloned().flatten(), r.get(3).cloned().flatten()) {
                        (Some(hex), Some(size)) => Some(sql::preview(&hex, size.parse().unwrap_or(0))),
                        _ => None,
                    };
                    (r.first().cloned().flatten().unwrap_or_default(), deleted, preview)
                })
                .collect();
            status.tables.push(TableStatus {
                name: name.clone(),
                live: first_number(&counts, 0),
                deleted: first_number(&counts, 1),
                tombstones,
                sample,
            });
        }
        if exists("_sluice_dead_letters") {
            status.dead_letters =
                first_number(&self.query("reading dead letters", &sql::dead_letter_count(&s, pipeline))?, 0);
            for r in self.query("reading dead letters", &sql::recent_dead_letters(&s, pipeline))? {
                if let [Some(origin), Some(reason)] = r.as_slice() {
                    status.recent_dead_letters.push((origin.clone(), reason.clone()));
                }
            }
        }
        Ok(status)
    }
}

/// Checkpoints from the rows of [`sql::checkpoints`].
fn parse_checkpoints(rows: ResultRows) -> Vec<Checkpoint> {
    rows.into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(stream), Some(position), ..] => {
                Some(Checkpoint { partition: stream.clone(), position: position.clone(), lease: None })
            }
            _ => None,
        })
        .collect()
}

/// Runs one query, retrying transient failures, and reads its rows.
fn query(api: &mut DataApi, what: &str, statement: &str) -> Result<ResultRows> {
    let statement = [statement.to_owned()];
    retrying(
        api,
        what,
        |api| {
            let id = api.run(&mut Submission::new(&statement))?;
            api.rows(&id)
        },
        |_| {},
    )
}

/// What Redshift would refuse: values wider than their columns, SUPER
/// values over 16 MB, strings in SUPER over the configured limit.
pub(super) fn refuses(row: &Row, super_max_string: usize) -> Option<String> {
    if let Some(why) = nul_in_text(row).or_else(|| nul_in_document(row)) {
        return Some(why);
    }
    // The widths the DDL gives the standard columns (`sql::column_type`).
    for (column, cell) in columns::STANDARD.iter().zip(columns::cells(row, &[])) {
        if let (columns::Kind::Text { max_bytes }, columns::Cell::Text(value)) = (column.kind, cell)
            && value.len() > max_bytes
        {
            return Some(format!(
                "{} is {} bytes; Redshift's column holds {max_bytes}",
                column.name,
                value.len()
            ));
        }
    }
    let c = &row.change;
    for column in &c.extra {
        if let crate::record::Value::Text(t) = &column.value
            && t.len() > MAX_VARCHAR
        {
            return Some(format!(
                "{} is {} bytes; Redshift's VARCHAR holds {MAX_VARCHAR}",
                column.name,
                t.len()
            ));
        }
    }
    let documents = [("new_image", c.new_image.as_deref()), ("old_image", c.old_image.as_deref())]
        .into_iter()
        .chain(c.extra.iter().map(|col| match &col.value {
            crate::record::Value::Json(j) => (col.name.as_str(), Some(j.as_str())),
            _ => (col.name.as_str(), None),
        }))
        .filter_map(|(name, json)| json.map(|j| (name, j)));
    for (name, json) in documents {
        if json.len() > MAX_SUPER {
            return Some(format!("{name} is {} bytes; a SUPER value holds at most 16 MB", json.len()));
        }
        let longest = sql::longest_string(json);
        if longest > super_max_string {
            return Some(format!(
                "{name} holds a string of {longest} bytes; SUPER strings hold at most {super_max_string} \
                 (super_max_string_bytes)"
            ));
        }
    }
    None
}

/// Column `i` of a result row, if present and not NULL.
fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(Option::as_deref)
}

/// The first column of the first row, as a number.
fn first_number(rows: &[Vec<Option<String>>]) -> Option<i64> {
    rows.first().and_then(|r| cell(r, 0)).and_then(|e| e.parse().ok())
}
