//! The Redshift Data API over AWS JSON 1.1: `POST /` with
//! `X-Amz-Target: RedshiftData.<Operation>`, PascalCase JSON bodies,
//! timestamps as epoch seconds and errors as HTTP 400 with `__type`.
//!
//! Shapes follow the AWS SDK for Rust's deserializers (aws-sdk-redshiftdata),
//! which is what sluice uses; the signature is not checked.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::CallFault;
use crate::engine::Job;
use crate::registry::{NewStatement, Part, Registry, SqlParameter, Statement, Status, Target};
use crate::results::{ColumnMetadata, Field};
use crate::sql;

/// The most SQL texts one BatchExecuteStatement may carry.
const MAX_BATCH: usize = 40;

/// The longest WaitTimeSeconds the Data API accepts.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// "The maximum query statement size is 100 KB": the stand-in reads KB as
/// 1,000 bytes and counts all the SQL of one call, the strictest readings.
const MAX_REQUEST_SQL_BYTES: usize = 100_000;

/// Refuses a call whose SQL texts together are over the Data API's limit.
fn check_size(sqls: &[String], batch: bool) -> Result<(), ApiError> {
    let bytes: usize = sqls.iter().map(String::len).sum();
    if bytes <= MAX_REQUEST_SQL_BYTES {
        return Ok(());
    }
    let what = if batch { "the Sqls together are" } else { "the Sql is" };
    Err(ApiError::validation(format!(
        "Cannot process query string larger than 100kB: {what} {bytes} bytes \
         (the stand-in allows {MAX_REQUEST_SQL_BYTES} bytes of SQL per call)"
    )))
}

/// A string member's length constraint from the Smithy model.
fn check_length(value: &str, member: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let length = value.chars().count();
    if length < min {
        return Err(ApiError::constraint(
            value,
            member,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if length > max {
        return Err(ApiError::constraint(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// The model's pattern for WorkgroupName: a name of `[a-z0-9-]` or a workgroup ARN.
fn is_workgroup_name(name: &str) -> bool {
    let plain = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let arn = || -> Option<bool> {
        let mut parts = name.split(':');
        let (arn, partition, service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let uuid = resource.strip_prefix("workgroup/")?;
        Some(
            parts.next().is_none()
                && arn == "arn"
                && partition.starts_with("aws")
                && service == "redshift-serverless"
                && region.split('-').count() >= 3
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && uuid.len() == 36
                && uuid::Uuid::parse_str(uuid).is_ok()
                && !uuid.bytes().any(|b| b.is_ascii_uppercase()),
        )
    };
    plain || arn().unwrap_or(false)
}

/// The sign-in combinations the Data API accepts: a serverless workgroup with
/// SecretArn or as the IAM identity; a cluster with SecretArn, with DbUser
/// (temporary credentials), or as the IAM identity. Database every time.
fn check_sign_in(target: &Target) -> Result<(), ApiError> {
    match (&target.cluster_identifier, &target.workgroup_name) {
        (None, None) => {
            return Err(ApiError::validation(
                "Either ClusterIdentifier or WorkgroupName needs to be specified.",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Either ClusterIdentifier or WorkgroupName needs to be specified, not both.",
            ));
        }
        (Some(cluster), None) => check_length(cluster, "clusterIdentifier", 1, 63)?,
        (None, Some(workgroup)) => {
            check_length(workgroup, "workgroupName", 3, 128)?;
            if !is_workgroup_name(workgroup) {
                return Err(ApiError::constraint(
                    workgroup,
                    "workgroupName",
                    "Member must satisfy regular expression pattern: \
                     ^(([a-z0-9-]+)|(arn:(aws(-[a-z]+)*):redshift-serverless:[a-z]{2}(-gov|(-iso[a-z]?))?-[a-z]+-\\d{1}:\\d{12}:workgroup/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))$",
                ));
            }
        }
    }
    for (value, member) in [(&target.secret_arn, "SecretArn"), (&target.db_user, "DbUser")] {
        if value.as_deref() == Some("") {
            return Err(ApiError::validation(format!("{member} must not be empty")));
        }
    }
    if target.secret_arn.is_some() && target.db_user.is_some() {
        return Err(ApiError::validation(
            "SecretArn and DbUser cannot both be specified: sign in with a secret or with temporary credentials",
        ));
    }
    if target.workgroup_name.is_some() && target.db_user.is_some() {
        return Err(ApiError::validation(
            "DbUser is only for a provisioned cluster (ClusterIdentifier); a serverless workgroup signs in \
             with SecretArn or as the caller's IAM identity",
        ));
    }
    if target.database.as_deref().unwrap_or_default().is_empty() {
        return Err(ApiError::validation(
            "Database is required when authenticating using either Secrets Manager or temporary credentials",
        ));
    }
    Ok(())
}

pub(crate) struct Api {
    pub registry: Arc<Registry>,
    pub jobs: UnboundedSender<Job>,
    /// Added to every request (`Config::request_latency`).
    pub latency: Duration,
}

pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new().route("/", post(handle)).with_state(api)
}

/// An error response: the status the model gives the error, and its name in `__type`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    resource_id: Option<String>,
    statement_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into(), resource_id: None, statement_id: None }
    }

    fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// A member that breaks a constraint of the Smithy model, worded as AWS's validation does.
    fn constraint(value: &str, member: &str, constraint: &str) -> ApiError {
        ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    fn not_found(id: &str) -> ApiError {
        ApiError {
            resource_id: Some(id.to_string()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Query does not exist: {id}"),
            )
        }
    }

    fn throttling() -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // `message` is what the SDK reads generically; the modelled members
        // are `Message`, `ResourceId` and `StatementId`, so send both spellings.
        let mut body = json!({"__type": self.kind, "message": self.message, "Message": self.message});
        if let Some(id) = self.resource_id {
            body["ResourceId"] = Value::String(id);
        }
        if let Some(id) = self.statement_id {
            body["StatementId"] = Value::String(id);
        }
        reply(self.status, &body)
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    (
        status,
        [
            (header::CONTENT_TYPE, "application/x-amz-json-1.1"),
            (header::HeaderName::from_static("x-amzn-requestid"), request_id.as_str()),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    tokio::time::sleep(api.latency).await;
    if api.registry.take_throttle() {
        return ApiError::throttling().into_response();
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let operation = target.strip_prefix("RedshiftData.").unwrap_or_default();
    tracing::debug!(operation, "Data API call");
    let result = match operation {
        "ExecuteStatement" => api.execute(&body).await,
        "BatchExecuteStatement" => api.batch_execute(&body).await,
        "DescribeStatement" => api.describe(&body),
        "GetStatementResult" => api.statement_result(&body),
        "CancelStatement" => api.cancel(&body),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("The Redshift stand-in does not implement {target:?}"),
        )),
    };
    match result {
        Ok(body) => reply(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn to_json(value: impl Serialize) -> Value {
    // Structs of strings, numbers and lists: serialising them cannot fail.
    serde_json::to_value(value).expect("a response serialises to JSON")
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            format!("cannot read the request: {e}"),
        )
    })
}

/// Members ExecuteStatement and BatchExecuteStatement share.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Common {
    #[serde(flatten)]
    target: Target,
    parameters: Option<Vec<SqlParameter>>,
    client_token: Option<String>,
    statement_name: Option<String>,
    session_id: Option<String>,
    session_keep_alive_seconds: Option<i64>,
    result_format: Option<String>,
    wait_time_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecuteRequest {
    sql: Option<String>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchRequest {
    #[serde(default)]
    sqls: Vec<String>,
    execution_mode: Option<String>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdRequest {
    #[serde(default)]
    id: String,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Description {
    id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_string: Option<String>,
    created_at: f64,
    updated_at: f64,
    duration: i64,
    has_result_set: bool,
    result_rows: i64,
    result_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    redshift_pid: Option<i64>,
    redshift_query_id: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    query_parameters: Vec<SqlParameter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_statements: Option<Vec<SubDescription>>,
    #[serde(flatten)]
    target: Target,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubDescription {
    id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    query_string: String,
    created_at: f64,
    updated_at: f64,
    duration: i64,
    has_result_set: bool,
    result_rows: i64,
    result_size: i64,
    redshift_query_id: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatementResult<'a> {
    records: &'a [Vec<Field>],
    column_metadata: &'a [ColumnMetadata],
    total_num_rows: usize,
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as f64 / 1000.0
}

/// Nanoseconds, or -1 until it ended.
fn nanos(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn describe_part(id: String, part: &Part) -> SubDescription {
    let outcome = part.outcome.as_ref();
    SubDescription {
        id,
        status: part.status.as_str(),
        error: part.error.clone(),
        query_string: part.query.clone(),
        created_at: epoch_seconds(part.clock.created_at),
        updated_at: epoch_seconds(part.clock.updated_at),
        duration: nanos(part.clock.duration),
        has_result_set: outcome.is_some_and(|o| o.result.is_some()),
        result_rows: outcome.map_or(-1, |o| o.rows),
        result_size: outcome.map_or(-1, |o| o.result.as_ref().map_or(0, |r| r.size)),
        redshift_query_id: part.query_id,
    }
}

/// A statement id, or `<id>:<n>` for sub-statement n (1-based) of a batch.
fn parse_id(id: &str) -> Result<(&str, Option<usize>), ApiError> {
    let (base, sub) = match id.split_once(':') {
        Some((base, n)) => {
            let n = n.parse::<usize>().ok().filter(|&n| n > 0);
            (
                base,
                Some(n.ok_or_else(|| ApiError::validation(format!("invalid sub-statement in Id {id:?}")))?),
            )
        }
        None => (id, None),
    };
    uuid::Uuid::parse_str(base)
        .map_err(|_| ApiError::validation(format!("Id {id:?} is not a statement id")))?;
    Ok((base, sub))
}

impl Api {
    fn check_common(common: &Common) -> Result<(), ApiError> {
        if common.session_id.is_some() || common.session_keep_alive_seconds.is_some() {
            return Err(ApiError::validation("the Redshift stand-in does not implement sessions"));
        }
        if common.result_format.as_deref().is_some_and(|f| f != "JSON") {
            return Err(ApiError::validation("the Redshift stand-in returns only ResultFormat JSON"));
        }
        if let Some(token) = &common.client_token {
            check_length(token, "clientToken", 1, 64)?;
        }
        if let Some(name) = &common.statement_name {
            check_length(name, "statementName", 0, 500)?;
        }
        if common.parameters.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::constraint(
                "[]",
                "parameters",
                "Member must have length greater than or equal to 1",
            ));
        }
        check_sign_in(&common.target)
    }

    /// Binds the parameters into every text; each parameter must be used.
    fn bind(sqls: &[String], parameters: &[SqlParameter]) -> Result<Vec<String>, ApiError> {
        if parameters.is_empty() {
            return Ok(sqls.to_vec());
        }
        let values: Vec<(String, String)> =
            parameters.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
        let mut used = std::collections::BTreeSet::new();
        let mut bound = Vec::new();
        for text in sqls {
            let (text, names) = sql::bind(text, &values).map_err(ApiError::validation)?;
            bound.push(text);
            used.extend(names);
        }
        match parameters.iter().find(|p| !used.contains(&p.name)) {
            Some(unused) => {
                Err(ApiError::validation(format!("The parameter {} is not used in the SQL", unused.name)))
            }
            None => Ok(bound),
        }
    }

    async fn submit(&self, common: Common, sqls: Vec<String>, batch: bool) -> Result<Value, ApiError> {
        Self::check_common(&common)?;
        check_size(&sqls, batch)?;
        let wait = Duration::from_secs(common.wait_time_seconds.unwrap_or(0));
        if wait > MAX_WAIT {
            return Err(ApiError::validation(format!("WaitTimeSeconds is at most {}", MAX_WAIT.as_secs())));
        }
        if let Some(empty) = sqls.iter().position(|s| s.trim().is_empty()) {
            return Err(ApiError::validation(format!("SQL text {} is empty", empty + 1)));
        }
        let parameters = common.parameters.unwrap_or_default();
        let bound = Self::bind(&sqls, &parameters)?;
        let new = NewStatement {
            id: uuid::Uuid::new_v4().to_string(),
            client_token: common.client_token,
            target: common.target.clone(),
            batch,
            parameters,
            sqls,
        };
        if let Some(fault) = self.registry.take_call_fault() {
            return Err(self.injected(fault, new));
        }
        let lost = self.registry.take_lost_response(&new.sqls);
        let submitted = self.registry.submit(new);
        if submitted.is_new {
            let job = Job {
                id: submitted.id.clone(),
                sqls: bound,
                batch,
                injected_failure: submitted.injected_failure,
            };
            // The executor lives as long as the server; if it is gone, the
            // statement stays SUBMITTED, which the client will see.
            let _ = self.jobs.send(job);
        }
        if lost {
            // Queued (and running) like any other: only the answer is lost.
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "Internal server error (the stand-in lost this response after queuing the statement)",
            ));
        }
        let mut response = to_json(&common.target);
        response["CreatedAt"] = json!(epoch_seconds(submitted.created_at));
        if !wait.is_zero() {
            // Asked to wait: report the status it reached by the deadline.
            let (status, pid, has_result_set) = self.wait_for(&submitted.id, wait).await;
            response["Status"] = json!(status.as_str());
            if let Some(pid) = pid {
                response["RedshiftPid"] = json!(pid);
            }
            if status == Status::Finished {
                response["HasResultSet"] = json!(has_result_set);
            }
        }
        response["Id"] = Value::String(submitted.id);
        Ok(response)
    }

    /// The error a test asked this call to answer with. The two that carry a
    /// `StatementId` create the statement, FAILED without running; the client
    /// token is not kept, so a retry runs the SQL afresh.
    fn injected(&self, fault: CallFault, new: NewStatement) -> ApiError {
        const INJECTED: &str = "(injected by the stand-in)";
        let server = |kind, message: &str| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, kind, format!("{message} {INJECTED}"))
        };
        let kind = match fault {
            CallFault::ExecuteStatementException => "ExecuteStatementException",
            CallFault::BatchExecuteStatementException => "BatchExecuteStatementException",
            CallFault::DatabaseConnectionException => {
                return server("DatabaseConnectionException", "Connection to a database failed.");
            }
            CallFault::InternalServerException => {
                return server("InternalServerException", "Internal server error.");
            }
            CallFault::ThrottlingException => return ApiError::throttling(),
            CallFault::ActiveStatementsExceededException => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ActiveStatementsExceededException",
                    format!("The number of active statements exceeds the limit. {INJECTED}"),
                );
            }
        };
        let error = server(kind, "The SQL statement encountered an environmental error while running.");
        let id = self.registry.create_failed(new, &error.message);
        ApiError { statement_id: Some(id), ..error }
    }

    /// Waits until statement `id` is done or `wait` has passed; returns its
    /// status, session pid and whether any of its parts returned rows.
    async fn wait_for(&self, id: &str, wait: Duration) -> (Status, Option<i64>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let state = self
                .registry
                .with(id, |s| {
                    let has_result_set =
                        s.parts.iter().any(|p| p.outcome.as_ref().is_some_and(|o| o.result.is_some()));
                    (s.status, s.pid, has_result_set)
                })
                .unwrap_or((Status::Submitted, None, false));
            if state.0.is_done() || tokio::time::Instant::now() >= deadline {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn execute(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: ExecuteRequest = parse(body)?;
        let sql = request.sql.ok_or_else(|| ApiError::validation("Sql is required"))?;
        self.submit(request.common, vec![sql], false).await
    }

    async fn batch_execute(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: BatchRequest = parse(body)?;
        if request.sqls.is_empty() || request.sqls.len() > MAX_BATCH {
            return Err(ApiError::validation(format!(
                "Sqls must hold 1 to {MAX_BATCH} statements, not {}",
                request.sqls.len()
            )));
        }
        if request.execution_mode.as_deref().is_some_and(|m| m != "TRANSACTION") {
            return Err(ApiError::validation(
                "the Redshift stand-in implements only ExecutionMode TRANSACTION",
            ));
        }
        self.submit(request.common, request.sqls, true).await
    }

    fn describe(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: IdRequest = parse(body)?;
        let (base, sub) = parse_id(&request.id)?;
        let description = self
            .registry
            .with(base, |s| describe_statement(base, sub, s))
            .ok_or_else(|| ApiError::not_found(&request.id))??;
        Ok(to_json(description))
    }

    fn statement_result(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: IdRequest = parse(body)?;
        if request.next_token.is_some() {
            return Err(ApiError::validation(
                "invalid NextToken: the stand-in returns every record in one page",
            ));
        }
        let (base, sub) = parse_id(&request.id)?;
        self.registry
            .with(base, |s| {
                let part = match (sub, s.batch) {
                    (Some(n), true) => s.parts.get(n - 1).ok_or_else(|| ApiError::not_found(&request.id))?,
                    (None, false) => &s.parts[0],
                    (None, true) => {
                        return Err(ApiError::validation(format!(
                            "{base} is a batch: ask for the result of a sub-statement, {base}:<n>"
                        )));
                    }
                    (Some(_), false) => return Err(ApiError::not_found(&request.id)),
                };
                let result = match (&part.status, part.outcome.as_ref().and_then(|o| o.result.as_ref())) {
                    (Status::Finished, Some(result)) => result,
                    (Status::Finished, None) => {
                        return Err(ApiError::validation(
                            "Query does not have result. Please check query status.",
                        ));
                    }
                    (status, _) => {
                        return Err(ApiError::validation(format!(
                            "Query has not finished (status {}). Please check query status.",
                            status.as_str()
                        )));
                    }
                };
                let body = StatementResult {
                    records: &result.records,
                    column_metadata: &result.columns,
                    total_num_rows: result.records.len(),
                };
                Ok(to_json(body))
            })
            .ok_or_else(|| ApiError::not_found(&request.id))?
    }

    fn cancel(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: IdRequest = parse(body)?;
        let (base, sub) = parse_id(&request.id)?;
        if sub.is_some() {
            return Err(ApiError::validation("cancel the batch, not one of its sub-statements"));
        }
        self.registry
            .with(base, |s| match s.status {
                Status::Submitted => {
                    s.abort_waiting();
                    Ok(())
                }
                // Best effort: the executor cancels the running query; if it
                // ends first, it keeps its own status.
                Status::Started => {
                    s.cancel_requested = true;
                    Ok(())
                }
                done => Err(ApiError::validation(format!(
                    "Could not cancel a query that is already in {} state",
                    done.as_str()
                ))),
            })
            .ok_or_else(|| ApiError::not_found(&request.id))??;
        Ok(json!({"Status": true}))
    }
}

fn describe_statement(base: &str, sub: Option<usize>, s: &Statement) -> Result<Description, ApiError> {
    let parts = || s.parts.iter().enumerate().map(|(i, p)| describe_part(format!("{base}:{}", i + 1), p));
    let common = |d: SubDescription| Description {
        id: d.id,
        status: d.status,
        error: d.error,
        query_string: Some(d.query_string),
        created_at: d.created_at,
        updated_at: d.updated_at,
        duration: d.duration,
        has_result_set: d.has_result_set,
        result_rows: d.result_rows,
        result_size: d.result_size,
        redshift_pid: s.pid,
        redshift_query_id: d.redshift_query_id,
        query_parameters: s.parameters.clone(),
        sub_statements: None,
        target: s.target.clone(),
    };
    match (sub, s.batch) {
        (Some(n), true) => {
            parts().nth(n - 1).map(common).ok_or_else(|| ApiError::not_found(&format!("{base}:{n}")))
        }
        (Some(n), false) => Err(ApiError::not_found(&format!("{base}:{n}"))),
        (None, false) => {
            // A plain statement: its one part, with the statement's own status.
            let part = describe_part(base.to_string(), &s.parts[0]);
            Ok(Description {
                status: s.status.as_str(),
                error: s.error.clone(),
                updated_at: epoch_seconds(s.clock.updated_at),
                duration: nanos(s.clock.duration),
                ..common(part)
            })
        }
        (None, true) => {
            let subs: Vec<SubDescription> = parts().collect();
            let done = s.status.is_done();
            let total = |f: fn(&SubDescription) -> i64| {
                if done { subs.iter().map(f).filter(|&v| v > 0).sum() } else { -1 }
            };
            Ok(Description {
                id: base.to_string(),
                status: s.status.as_str(),
                error: s.error.clone(),
                // As Redshift does, a batch has no QueryString of its own.
                query_string: None,
                created_at: epoch_seconds(s.clock.created_at),
                updated_at: epoch_seconds(s.clock.updated_at),
                duration: nanos(s.clock.duration),
                has_result_set: subs.iter().any(|d| d.has_result_set),
                result_rows: total(|d| d.result_rows),
                result_size: total(|d| d.result_size),
                redshift_pid: s.pid,
                redshift_query_id: 0,
                query_parameters: s.parameters.clone(),
                sub_statements: Some(subs),
                target: s.target.clone(),
            })
        }
    }
}
