//! The Redshift Data API's statement lifecycle: submit, and unless the
//! submit's answer already says the statement finished, poll
//! `DescribeStatement` with backoff until it ends; read results, and sort
//! failures into worth-retrying and not.

use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::operation::batch_execute_statement::BatchExecuteStatementError;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError;
use aws_sdk_redshiftdata::types::{Field, StatementStatusString, StatusString};

use tokio::task::JoinHandle;

use super::{Auth, Compute, Config};
use crate::sinks::retry::Failure;

/// Longest slice of a failed statement quoted in an error.
const QUOTE: usize = 400;

/// How long a submit waits for its statement to end (`WaitTimeSeconds`, at
/// most 30): a statement that ends in time costs one request instead of a
/// submit and polls, which is most of a commit's time on a distant warehouse.
const WAIT_TIME_SECONDS: i32 = 10;

/// A statement's rows, every field as text (`None` for NULL).
pub(super) type ResultRows = Vec<Vec<Option<String>>>;

/// Both statement requests take the same database, compute and sign-in.
macro_rules! addressed {
    ($request:expr, $api:expr) => {{
        let request = $request.database(&$api.database);
        let request = match &$api.compute {
            Compute::Workgroup(w) => request.workgroup_name(w),
            Compute::Cluster(c) => request.cluster_identifier(c),
        };
        match &$api.auth {
            Auth::SecretArn(a) => request.secret_arn(a),
            Auth::DbUser(u) => request.db_user(u),
            Auth::Iam => request,
        }
    }};
}

pub(super) struct DataApi {
    client: aws_sdk_redshiftdata::Client,
    database: String,
    compute: Compute,
    auth: Auth,
}

impl DataApi {
    pub fn new(config: &Config) -> Self {
        DataApi {
            client: crate::aws::redshift_data(),
            database: config.database.clone(),
            compute: config.compute.clone(),
            auth: config.auth.clone(),
        }
    }

    /// Runs statements as one transaction and waits for them to finish;
    /// returns the statement id (`<id>:<n>` names the n-th of a batch).
    /// Called again after a failure, it carries on where the outcome became
    /// unknown (see [`Submission`]).
    pub fn run(&self, submission: &mut Submission<'_>) -> Result<String, Failure> {
        crate::aws::block_on(async {
            let id = match submission.id.clone() {
                Some(id) => id,
                None => {
                    let (id, finished) = self.submit(submission).await?;
                    submission.id = Some(id.clone());
                    if finished {
                        return Ok(id);
                    }
                    id
                }
            };
            match self.wait(&id).await {
                Ok(()) => Ok(id),
                Err(Waited::Failed(failure)) => {
                    // It ended: the next attempt is a new statement.
                    submission.renew();
                    Err(failure)
                }
                Err(Waited::Unknown(failure)) => Err(failure),
            }
        })
    }

    /// Sends the statements; returns their id and whether the answer says
    /// they finished (else, or when they failed, `wait` describes them).
    /// After an answer that leaves
    /// the outcome unknown (a lost response, a server error), the token is
    /// kept: sending it again returns the first statement's id and runs
    /// nothing, so a batch never runs twice at once (two overlapping
    /// DELETE + INSERT transactions could duplicate rows: Redshift does not
    /// enforce keys).
    async fn submit(&self, submission: &mut Submission<'_>) -> Result<(String, bool), Failure> {
        let token = submission.token.clone();
        let sent = match submission.sqls {
            [one] => addressed!(self.client.execute_statement().sql(one), self)
                .client_token(token)
                .wait_time_seconds(WAIT_TIME_SECONDS)
                .send()
                .await
                .map(|out| {
                    out.id().map(|id| (id.to_owned(), out.status() == Some(&StatementStatusString::Finished)))
                })
                .map_err(|e| {
                    let id = match e.as_service_error() {
                        Some(ExecuteStatementError::ExecuteStatementException(e)) => Some(e.statement_id()),
                        _ => None,
                    };
                    refused("ExecuteStatement", id.map(str::to_owned), e)
                }),
            sqls => addressed!(self.client.batch_execute_statement().set_sqls(Some(sqls.to_vec())), self)
                .client_token(token)
                .wait_time_seconds(WAIT_TIME_SECONDS)
                .send()
                .await
                .map(|out| {
                    out.id().map(|id| (id.to_owned(), out.status() == Some(&StatementStatusString::Finished)))
                })
                .map_err(|e| {
                    let id = match e.as_service_error() {
                        Some(BatchExecuteStatementError::BatchExecuteStatementException(e)) => {
                            Some(e.statement_id())
                        }
                        _ => None,
                    };
                    refused("BatchExecuteStatement", id.map(str::to_owned), e)
                }),
        };
        match sent {
            Ok(sent) => sent.ok_or_else(|| Failure::Stop(anyhow!("the Data API returned no statement id"))),
            // The statement exists: the next attempt waits for its end.
            Err((Some(id), _, failure)) if !id.is_empty() => {
                submission.id = Some(id);
                Err(failure)
            }
            Err((_, true, failure)) => Err(failure),
            Err((_, false, failure)) => {
                submission.renew();
                Err(failure)
            }
        }
    }

    /// The rows a finished statement (or `<id>:<n>` sub-statement) returned,
    /// every field as text (`None` for NULL).
    pub fn rows(&self, id: &str) -> Result<ResultRows, Failure> {
        crate::aws::block_on(read_rows(&self.client, id))
    }

    /// [`DataApi::rows`] of several statements, read at once: a batch's
    /// counts cost one round trip, not one per target.
    pub fn rows_of_each(&self, ids: &[String]) -> Result<Vec<ResultRows>, Failure> {
        crate::aws::block_on(read_each(&self.client, ids))
    }

    /// [`DataApi::rows_of_each`], read in the background while the caller
    /// goes on (with its next transaction).
    pub fn rows_of_each_later(&self, ids: Vec<String>) -> JoinHandle<Result<Vec<ResultRows>, Failure>> {
        let client = self.client.clone();
        crate::aws::runtime().spawn(async move { read_each(&client, &ids).await })
    }

    /// Polls a statement until it ends.
    async fn wait(&self, id: &str) -> Result<(), Waited> {
        let mut pause = Duration::from_millis(10);
        loop {
            let d = self
                .client
                .describe_statement()
                .id(id)
                .send()
                .await
                .map_err(|e| Waited::Unknown(sdk_failure("DescribeStatement", e)))?;
            match d.status() {
                Some(StatusString::Finished) => return Ok(()),
                Some(StatusString::Failed) => return Err(Waited::Failed(statement_failure(&d))),
                Some(StatusString::Aborted) => {
                    return Err(Waited::Failed(Failure::Stop(anyhow!("statement {id} was cancelled"))));
                }
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

async fn read_each(
    client: &aws_sdk_redshiftdata::Client,
    ids: &[String],
) -> Result<Vec<ResultRows>, Failure> {
    futures_util::future::try_join_all(ids.iter().map(|id| read_rows(client, id))).await
}

async fn read_rows(client: &aws_sdk_redshiftdata::Client, id: &str) -> Result<ResultRows, Failure> {
    let mut rows = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_statement_result()
            .id(id)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_failure("GetStatementResult", e))?;
        rows.extend(page.records().iter().map(|record| record.iter().map(field_text).collect()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(rows);
        }
    }
}

/// Why waiting for a statement failed.
enum Waited {
    /// The statement ended without finishing.
    Failed(Failure),
    /// Its status could not be read; it may still run.
    Unknown(Failure),
}

/// One transaction's statements across the attempts to run them: the
/// client token they are sent with and, once known, their statement id.
pub(super) struct Submission<'a> {
    sqls: &'a [String],
    token: String,
    id: Option<String>,
}

impl<'a> Submission<'a> {
    pub fn new(sqls: &'a [String]) -> Self {
        Submission { sqls, token: new_token(), id: None }
    }

    /// The statement ended, or was never created: the next attempt sends a new one.
    fn renew(&mut self) {
        self.token = new_token();
        self.id = None;
    }
}

/// A refused submission: the statement the error names, if any; whether it
/// may have run; the failure.
fn refused<E, R>(operation: &str, id: Option<String>, e: SdkError<E, R>) -> (Option<String>, bool, Failure)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let may_have_run = may_have_run(&e);
    (id, may_have_run, sdk_failure(operation, e))
}

/// Whether a refused submission may still have started a statement: a
/// server error, a lost or timed-out response may hide one; throttling, too
/// many statements, no connection to the database and invalid input do not.
fn may_have_run<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::ServiceError(s) => !matches!(
            s.err().code(),
            Some(
                "ThrottlingException"
                    | "ActiveStatementsExceededException"
                    | "ActiveSessionsExceededException"
                    | "DatabaseConnectionException"
                    | "ValidationException"
            )
        ),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    }
}

/// A client token: any unique string of up to 64 characters.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A statement Redshift ran and failed: its error text, and which
/// statement of a batch failed (0-based), quoted briefly (statements carry
/// data, never credentials).
#[derive(Debug, thiserror::Error)]
#[error("Redshift failed {}: {error}\n  in: {quoted}", match index {
    Some(i) => format!("statement {} of the batch", i + 1),
    None => "the statement".to_owned(),
})]
pub(super) struct StatementFailed {
    pub index: Option<usize>,
    pub error: String,
    quoted: String,
}

fn statement_failure(d: &DescribeStatementOutput) -> Failure {
    let error = d.error().unwrap_or("no error text").to_owned();
    let subs = d.sub_statements();
    let (index, query) = match subs.iter().position(|s| s.error().is_some()) {
        Some(i) => (Some(i), subs[i].query_string().unwrap_or_default()),
        None => (None, d.query_string().unwrap_or_default()),
    };
    let mut quoted: String = query.chars().take(QUOTE).collect();
    if query.chars().count() > QUOTE {
        quoted.push('…');
    }
    let retry = transient(&error);
    let e = anyhow::Error::new(StatementFailed { index, error, quoted });
    if retry { Failure::Retry(e) } else { Failure::Stop(e) }
}

/// Errors that another attempt can get past: serializable-isolation
/// conflicts between concurrent transactions, lost connections, and the
/// environmental errors the Data API fails a statement with.
fn transient(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    [
        "serializable isolation violation",
        "could not serialize",
        "connection",
        "connecting to",
        "communicating with",
        // ExecuteStatementException / BatchExecuteStatementException.
        "environmental error",
        "terminating",
        "shutting down",
        "starting up",
        "timed out",
        "try again",
    ]
    .iter()
    .any(|w| error.contains(w))
}

fn sdk_failure<E, R>(operation: &str, e: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retry = match &e {
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ThrottlingException"
                    | "ActiveStatementsExceededException"
                    | "ActiveSessionsExceededException"
                    | "InternalServerException"
                    | "DatabaseConnectionException"
                    | "BatchExecuteStatementException"
                    | "ExecuteStatementException"
            )
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    let message = match &e {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or("no message")
        ),
        other => crate::aws::describe(other),
    };
    let e = anyhow!("Redshift Data API {operation}: {message}");
    if retry { Failure::Retry(e) } else { Failure::Stop(e) }
}

fn field_text(field: &Field) -> Option<String> {
    match field {
        Field::IsNull(true) => None,
        Field::StringValue(s) => Some(s.clone()),
        Field::LongValue(n) => Some(n.to_string()),
        Field::DoubleValue(f) => Some(f.to_string()),
        Field::BooleanValue(b) => Some(b.to_string()),
        Field::BlobValue(b) => Some(String::from_utf8_lossy(b.as_ref()).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::transient;

    #[test]
    fn a_database_that_cannot_be_reached_for_a_moment_is_transient() {
        // What the Data API (and its stand-in) says while the database
        // restarts: before a statement, and during one.
        for error in [
            "error connecting to server",
            "terminating connection due to administrator command",
            "error communicating with the server",
        ] {
            assert!(transient(error), "{error}");
        }
        assert!(!transient("column \"x\" does not exist"));
    }

    #[test]
    fn a_statement_failed_by_an_environmental_error_is_transient() {
        // The Data API's ExecuteStatementException and
        // BatchExecuteStatementException create the statement, FAILED with
        // this text; retrying must send it afresh, not stop.
        assert!(transient("The SQL statement encountered an environmental error while running."));
    }
}
