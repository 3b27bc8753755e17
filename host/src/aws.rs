//! AWS SDK configuration shared by every room that talks to AWS.
//!
//! Credentials and region come from the default chain (environment, profile,
//! SSO, instance or task role). `AWS_ENDPOINT_URL_<SERVICE>` and
//! `AWS_ENDPOINT_URL` point a service elsewhere, e.g. at a local stand-in;
//! S3 then uses path-style addressing, which local S3 servers need.

use std::future::Future;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, SdkConfig};
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
    let s3 = aws_sdk_s3::config::Builder::from(config()).force_path_style(custom_endpoint).build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn redshift_data() -> aws_sdk_redshiftdata::Client {
    aws_sdk_redshiftdata::Client::new(config())
}

pub fn kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(config)
}

/// The same configuration, signed with a role assumed through STS (e.g.
/// in another account). The credentials are cached and renewed before
/// they expire.
pub async fn assume_role(config: &SdkConfig, role_arn: &str) -> SdkConfig {
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
