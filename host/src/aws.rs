//! AWS SDK configuration shared by every room that talks to AWS.
//!
//! Credentials and region come from the default chain (environment, profile,
//! SSO, instance or task role). `AWS_ENDPOINT_URL_<SERVICE>` and
//! `AWS_ENDPOINT_URL` point a service elsewhere, e.g. at a local stand-in;
//! S3 then uses path-style addressing, which local S3 servers need.

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::runtime::Runtime;

/// A runtime for one room's SDK calls, made from blocking code.
pub fn runtime(name: &str, workers: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).thread_name(name).enable_all().build()
}

/// An S3 client from the default configuration, built on `runtime`.
pub fn s3_client(runtime: &Runtime) -> aws_sdk_s3::Client {
    runtime.block_on(async { s3(&config().await) })
}

pub async fn config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(custom_endpoint).build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn redshift_data(config: &SdkConfig) -> aws_sdk_redshiftdata::Client {
    aws_sdk_redshiftdata::Client::new(config)
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
