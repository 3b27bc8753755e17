//! Amazon Redshift through the Redshift Data API: the mission's target.
//!
//! A batch is checked against the writer epoch, staged (each target's rows
//! in a table of their own), applied (staged rows older than what is stored
//! are dropped, the rest replace the stored ones), and committed with its
//! dead letters and checkpoints. `script.rs` fits that into requests of at
//! most 40 statements and 100 KB of SQL: one transaction for almost every
//! batch, and for larger ones, staging requests first (COPY from S3, or
//! INSERTs with large values sent in pieces), then the transaction.
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
    Applied, Asked, Fenced, Inspector, Rows, SameEvent, Sink, SinkError, Status, TableStatus, TargetTable,
    Writer, missing_columns, nul_in_document, nul_in_text,
};
pub use config::{Auth, Compute, Config, MAX_PARTITION_BYTES, Section};

use crate::columns;
use crate::ident::quote;
use crate::objects::{Access, Location, ObjectStore};
use crate::record::{Checkpoint, DeleteMode, Row, SinkBatch};
use client::{DataApi, StatementFailed, Submission};
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
    epoch: i64,
    targets: HashMap<String, TargetTable>,
    same_event: SameEvent,
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
            targets: HashMap::new(),
            same_event: writer.same_event,
        };
        sink.prepare(writer.pipeline, writer.targets)?;
        Ok(sink)
    }

    fn prepare(&mut self, pipeline: &str, targets: &[(String, DeleteMode)]) -> Result<()> {
        self.pipeline = pipeline.to_owned();
        // One query before the DDL, as each request costs a round trip: the
        // dead letters' layout decides what the DDL does, and a target it
        // creates has only the standard columns.
        let mut names: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
        names.push(DEAD_LETTERS);
        let columns =
            self.query("reading the tables' columns", &sql::columns_of(&self.config.schema, &names))?;
        self.keep_old_dead_letters(&columns)?;
        let mut ddl = sql::state_tables(&self.schema);
        ddl.extend(targets.iter().map(|(t, _)| sql::create_target(&self.schema, &quote(t))));
        self.run_all("creating sluice's tables", ddl)?;
        for (name, deletes) in targets {
            let extras = columns
                .iter()
                .filter(|r| cell(r, 0) == Some(name.as_str()))
                .filter_map(|r| cell(r, 1).map(str::to_owned))
                .filter(|c| !columns::is_standard(c))
                .collect();
            self.targets.insert(name.clone(), TargetTable { deletes: *deletes, extras });
        }
        let finished = self.run("claiming the writer epoch", &sql::claim_epoch(&self.schema, pipeline))?;
        let id = format!("{finished}:3");
        let rows = retrying(self, "reading the writer epoch", |sink| sink.api.rows(&id), |_| {})?;
        self.epoch = first_number(&rows).ok_or_else(|| anyhow!("Redshift returned no writer epoch"))?;
        if let Some(staging) = &self.staging {
            staging.check(&[Access::List, Access::Put, Access::Delete], &format!("{pipeline}/probe"))?;
        }
        self.region = match &self.staging {
            Some(staging) => staging.region()?,
            None => None,
        };
        self.drop_leftover_stages()?;
        self.clean_staging()
    }

    /// Runs statements as one transaction, retrying transient failures.
    fn run(&mut self, what: &str, statements: &[String]) -> Result<String> {
        let mut submission = Submission::new(statements);
        retrying(self, what, |sink| sink.api.run(&mut submission), |_| {})
    }

    fn query(&mut self, what: &str, statement: &str) -> Result<Vec<Vec<Option<String>>>> {
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

    /// Runs one request; reads what it applied.
    fn run_request(&mut self, what: &str, request: &Request) -> Result<Applied> {
        let id = match self.run(what, &request.statements) {
            Ok(id) => id,
            Err(e) => return Err(self.fenced(e)),
        };
        let mut applied = Applied::default();
        for (at, staged, target) in &request.counts {
            let id = format!("{id}:{at}");
            let rows = retrying(self, "reading what a batch applied", |sink| sink.api.rows(&id), |_| {})?;
            let number = |i: usize| rows.first().and_then(|r| cell(r, i)).and_then(|v| v.parse().ok());
            let (deleted, upserted): (u64, u64) = (number(0).unwrap_or(0), number(1).unwrap_or(0));
            *applied.target(target) += Rows { upserted, deleted, stale: staged - upserted - deleted };
        }
        Ok(applied)
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
    /// they keep all of it, as VARBYTE. A table of the old layout is renamed
    /// (nothing in it is lost) and a new one created beside it.
    /// `columns` are (table, column) rows of information_schema.
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
        }
        Ok(())
    }

    /// Drops the staging tables a crashed run of this pipeline left behind
    /// (named after an older writer epoch).
    fn drop_leftover_stages(&mut self) -> Result<()> {
        let ours = format!("_{}_", script::pipeline_tag(&self.pipeline));
        let current = format!("{ours}{}_", self.epoch);
        let tables = self.query("listing tables", &sql::tables_in(&self.config.schema))?;
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
    /// run has claimed the pipeline: read from the epoch itself, not from
    /// the error's text.
    fn fenced(&mut self, e: anyhow::Error) -> anyhow::Error {
        if e.downcast_ref::<StatementFailed>().is_none_or(|f| f.index != Some(0)) {
            return e;
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
    /// and at start for those a crashed run left behind.
    fn clean_staging(&mut self) -> Result<()> {
        match &self.staging {
            Some(staging) => staging.delete_prefix(&format!("{}/", self.pipeline)),
            None => Ok(()),
        }
    }
}

impl Sink for RedshiftSink {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, SinkError> {
        let rows = self.query("reading checkpoints", &sql::checkpoints(&self.schema, &self.pipeline))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Some(stream), Some(position), ..] => {
                    Some(Checkpoint { partition: stream.clone(), position: position.clone() })
                }
                _ => None,
            })
            .collect())
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
        let what = format!("writing batch {}", batch.number);
        for request in &script.preload {
            self.run_request(&what, request)?;
        }
        let mut applied = Applied { dead_lettered: batch.dead_letters.len() as u64, ..Default::default() };
        let last = script.apply.len() - 1;
        for (i, request) in script.apply.iter().enumerate() {
            if i == last {
                fail::fail_point!("sink::before_commit", |_| std::process::abort());
            }
            applied += self.run_request(&what, request)?;
        }
        fail::fail_point!("sink::after_commit", |_| std::process::abort());
        if staged {
            self.clean_staging()?;
        }
        Ok(applied)
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

    fn query(&mut self, what: &str, statement: &str) -> Result<Vec<Vec<Option<String>>>> {
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

/// Runs one query, retrying transient failures, and reads its rows.
fn query(api: &mut DataApi, what: &str, statement: &str) -> Result<Vec<Vec<Option<String>>>> {
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
