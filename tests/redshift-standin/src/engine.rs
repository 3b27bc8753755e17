//! The executor: runs submitted statements on PostgreSQL, one at a time in
//! submission order, each on a new connection, and records how they ended.
//!
//! Every session runs with `standard_conforming_strings = off` (a backslash
//! in '...' escapes, as in Redshift) and UTC as its time zone, Redshift's
//! default.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{Client, NoTls};

use crate::registry::{Registry, Statement};
use crate::results::{self, Outcome};
use crate::sql::{Token, lex};
use crate::{Config, compat, copy, ddl};

/// PostgreSQL's longest name (NAMEDATALEN - 1); it truncates longer ones.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// How often a running statement checks whether it was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// A statement for the executor, its SQL already bound.
pub(crate) struct Job {
    pub id: String,
    pub sqls: Vec<String>,
    pub batch: bool,
    pub injected_failure: Option<String>,
}

/// How a job ended badly.
enum Failure {
    /// SQL text `i` failed (or was cancelled) with this error.
    Part(usize, String),
    /// Every text ran, but the batch's COMMIT failed.
    Commit(String),
}

pub(crate) struct Engine {
    registry: Arc<Registry>,
    postgres: tokio_postgres::Config,
    s3: Option<aws_sdk_s3::Client>,
    /// The cluster's Region, which COPY compares with the bucket's.
    region: String,
}

impl Engine {
    pub(crate) fn new(registry: Arc<Registry>, config: &Config) -> anyhow::Result<Engine> {
        let url = &config.postgres_url;
        let mut postgres: tokio_postgres::Config =
            url.parse().with_context(|| format!("parsing the PostgreSQL URL {url}"))?;
        postgres
            .options(format!(
                "-c standard_conforming_strings=off -c escape_string_warning=off -c TimeZone=UTC -c {}={}",
                compat::SUPER_MAX_STRING_SETTING,
                config.super_max_string_bytes
            ))
            .application_name("redshift-standin")
            .connect_timeout(Duration::from_secs(10));
        Ok(Engine {
            registry,
            postgres,
            s3: config.s3_endpoint.as_deref().map(s3_client),
            region: config.region.clone(),
        })
    }

    pub(crate) async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.postgres.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// Runs jobs in the order they were submitted until the sender is gone.
    pub(crate) async fn work(self: Arc<Self>, mut jobs: UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            self.run(job).await;
        }
    }

    async fn run(&self, job: Job) {
        if !self.registry.with(&job.id, Statement::begin).unwrap_or(false) {
            return;
        }
        let ended = match &job.injected_failure {
            Some(error) => Err(Failure::Part(0, error.clone())),
            None => self.run_parts(&job).await,
        };
        self.registry.with(&job.id, |s| match ended {
            Ok(()) => s.finish(),
            Err(Failure::Part(i, error)) => s.fail(i, error),
            Err(Failure::Commit(error)) => s.fail_after_parts(error),
        });
    }

    /// Runs the job's SQL texts, a batch in one transaction.
    async fn run_parts(&self, job: &Job) -> Result<(), Failure> {
        let client = self.session(&job.id).await.map_err(|e| Failure::Part(0, e))?;
        if job.batch {
            client.batch_execute("BEGIN").await.map_err(|e| Failure::Part(0, error_text(&e)))?;
        }
        for (i, sql) in job.sqls.iter().enumerate() {
            let cancelled = self.registry.with(&job.id, |s| {
                s.start_part(i);
                s.cancel_requested
            });
            let result = if cancelled == Some(true) {
                Err("Query cancelled by CancelStatement".to_string())
            } else {
                self.execute_cancellable(&job.id, &client, sql).await
            };
            match result {
                Ok(outcome) => {
                    self.registry.with(&job.id, |s| s.finish_part(i, outcome));
                }
                Err(error) => {
                    if job.batch {
                        // Dropping the session would roll back too; saying
                        // so keeps the server log readable.
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    return Err(Failure::Part(i, error));
                }
            }
        }
        if job.batch {
            client.batch_execute("COMMIT").await.map_err(|e| Failure::Commit(error_text(&e)))?;
        }
        Ok(())
    }

    /// A new session for statement `id`; its backend pid is the RedshiftPid.
    async fn session(&self, id: &str) -> Result<Client, String> {
        let client = self.connect().await.map_err(|e| error_text(&e))?;
        let pid: i32 =
            client.query_one("SELECT pg_backend_pid()", &[]).await.map_err(|e| error_text(&e))?.get(0);
        self.registry.with(id, |s| s.pid = Some(pid.into()));
        Ok(client)
    }

    /// Runs one SQL text; once CancelStatement asked, it is cancelled in
    /// PostgreSQL. The request is repeated until the text ends, because one
    /// that reaches the server between queries is ignored.
    async fn execute_cancellable(&self, id: &str, client: &Client, sql: &str) -> Result<Outcome, String> {
        let mut execution = std::pin::pin!(self.execute(client, sql));
        let mut ticks = tokio::time::interval(CANCEL_POLL);
        loop {
            tokio::select! {
                result = &mut execution => return result,
                _ = ticks.tick() => {
                    if self.registry.with(id, |s| s.cancel_requested).unwrap_or(false)
                        && let Err(e) = client.cancel_token().cancel_query(NoTls).await
                    {
                        tracing::debug!("cancelling {id}: {e}");
                    }
                }
            }
        }
    }

    /// Runs one SQL text: a COPY from S3 by the stand-in, anything else by
    /// PostgreSQL, with its column types made to count bytes.
    async fn execute(&self, client: &Client, sql: &str) -> Result<Outcome, String> {
        check_identifiers(sql)?;
        match copy::parse(sql) {
            Some(Ok(copy)) => {
                return copy::load(client, self.s3.as_ref(), &self.region, &copy)
                    .await
                    .map(|rows| Outcome { result: None, rows: rows as i64 })
                    .map_err(|e| format!("{e:#}"));
            }
            Some(Err(e)) => return Err(format!("{e:#}")),
            None => {}
        }
        match ddl::translate(sql)? {
            Some(translated) => {
                for domain in &translated.domains {
                    client.batch_execute(&domain.create_sql()).await.map_err(|e| error_text(&e))?;
                }
                results::run(client, &translated.sql).await
            }
            None => results::run(client, sql).await,
        }
    }
}

/// Refuses names PostgreSQL would silently truncate to 63 bytes, where two
/// names Redshift keeps apart (it allows 127 bytes) could become one.
fn check_identifiers(sql: &str) -> Result<(), String> {
    for spanned in lex(sql) {
        let name = match &spanned.token {
            Token::Word(w) if !w.starts_with(|c: char| c.is_ascii_digit()) => w,
            Token::Quoted(q) => q,
            _ => continue,
        };
        if name.len() > MAX_IDENTIFIER_BYTES {
            return Err(format!(
                "ERROR: the identifier \"{name}\" is {} bytes: Redshift allows identifiers of up to 127 bytes, \
                 but the Redshift stand-in's PostgreSQL truncates names over {MAX_IDENTIFIER_BYTES} bytes, \
                 so the stand-in refuses them",
                name.len()
            ));
        }
    }
    Ok(())
}

/// An error as Redshift words it in DescribeStatement: `ERROR: ...` for the
/// database's errors, the driver's text for connection problems.
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("ERROR: {}\n  DETAIL: {detail}", db.message()),
            None => format!("ERROR: {}", db.message()),
        },
        None => e.to_string(),
    }
}

/// An S3 client for the COPY endpoint: path-style, as moto and MinIO want,
/// with static credentials, since the stand-in has no IAM to check.
fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("standin", "standin", None, None, "redshift-standin"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
