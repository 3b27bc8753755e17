//! AWS SDK configuration shared by every room that talks to AWS.
//!
//! Credentials and region come from the default chain (environment, profile,
//! SSO, instance or task role). `AWS_ENDPOINT_URL_<SERVICE>` and
//! `AWS_ENDPOINT_URL` point a service elsewhere, e.g. at a local stand-in;
//! S3 then uses path-style addressing, which local S3 servers need.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::runtime::Runtime;

/// The process's one runtime for AWS SDK calls. Every room calls from
/// blocking code through [`block_on`] (the sink thread, export readers, the
/// pipeline) or spawns its tasks here (Kinesis shard readers).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("sluice-aws")
            .enable_all()
            .build()
            .expect("starting the AWS runtime")
    })
}

/// Runs `future` on the AWS runtime, from blocking code.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The process's one SDK configuration, from the default chain, loaded on
/// first use (so commands that never call AWS never look for credentials).
pub fn config() -> &'static SdkConfig {
    static CONFIG: OnceLock<SdkConfig> = OnceLock::new();
    CONFIG.get_or_init(|| block_on(aws_config::defaults(BehaviorVersion::latest()).load()))
}

/// An S3 client on the shared configuration.
pub fn s3_client() -> aws_sdk_s3::Client {
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let s3 = aws_sdk_s3::config::Builder::from(config())
        .force_path_style(custom_endpoint)
        .interceptor(LogCalls)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn redshift_data() -> aws_sdk_redshiftdata::Client {
    let conf = aws_sdk_redshiftdata::config::Builder::from(config()).interceptor(LogCalls).build();
    aws_sdk_redshiftdata::Client::from_conf(conf)
}

/// A DynamoDB client on the shared configuration, for the lease table,
/// whose every attempt gives up after `attempt`: the SDK sets no read
/// timeout, and a call left unanswered would stop a worker's renewals
/// without its knowing that its leases expire.
pub fn dynamodb(attempt: Duration) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let shared = config();
    let timeouts = shared.timeout_config().map(TimeoutConfig::to_builder).unwrap_or_default();
    let conf = aws_sdk_dynamodb::config::Builder::from(shared)
        .timeout_config(timeouts.operation_attempt_timeout(attempt).build())
        .interceptor(LogCalls)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub fn kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(config).interceptor(LogCalls).build(),
    )
}

/// Logs each AWS operation sluice calls (debug, target `sluice::aws`): for
/// an operator tracing a permission, and for the tests that check
/// `sluice iam-policy` allows every call a run makes.
#[derive(Debug)]
struct LogCalls;

impl Intercept for LogCalls {
    fn name(&self) -> &'static str {
        "sluice-log-calls"
    }

    // Not `read_before_execution`: a client's interceptors run that before
    // the operation's metadata is in the bag.
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(op) = cfg.load::<Metadata>() {
            tracing::debug!(service = op.service(), operation = op.name(), "aws call");
        }
        Ok(())
    }
}

/// The same configuration, signed with a role assumed through STS (e.g.
/// in another account). The credentials are cached and renewed before
/// they expire.
pub async fn assume_role(config: &SdkConfig, role_arn: &str) -> SdkConfig {
    // The provider's own STS client cannot take an interceptor: its call
    // is logged here, where it is set up.
    tracing::debug!(service = "sts", operation = "AssumeRole", role_arn, "aws call");
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("sluice")
        .configure(config)
        .build()
        .await;
    config
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
        .build()
}

/// An SDK error with its causes, e.g. "dispatch failure: connection refused".
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
