//! AWS SDK configuration shared by every room that talks to AWS.
//!
//! Credentials and region come from the default chain (environment, profile,
//! SSO, instance or task role). `AWS_ENDPOINT_URL_<SERVICE>` and
//! `AWS_ENDPOINT_URL` point a service elsewhere, e.g. at a local stand-in;
//! S3 then uses path-style addressing, which local S3 servers need.

use aws_config::{BehaviorVersion, SdkConfig};

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
