//! `moto_server` (PyPI `moto[server]`) as S3, STS and DynamoDB on 127.0.0.1.
//!
//! DynamoDB has a server of its own (`moto_dynamodb.py`) that changes its
//! state one request at a time: moto checks a write's condition and makes
//! the write without a lock, so two concurrent conditional writes could both
//! succeed (2 of 300 racing pairs of lease takes did), where DynamoDB lets
//! exactly one through. Each request is read in a thread of its own first,
//! so a client stalled mid-request holds up no one, as in DynamoDB.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::process;

pub struct Moto {
    port: u16,
}

impl Moto {
    /// The endpoint for `AWS_ENDPOINT_URL_S3` and friends.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// An S3 client for this server (path-style, us-east-1, fake credentials).
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region};
        let config = Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A DynamoDB client for this server (us-east-1, fake credentials). A
    /// call gives up after 30 s, so a stalled server fails a test, not hangs it.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
        use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Credentials, Region};
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .operation_timeout(std::time::Duration::from_secs(30))
            .build();
        let config = Builder::new()
            .timeout_config(timeouts)
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

/// The moto server of this test process (S3, STS), started on first use.
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = process::free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        start(cmd, port, "moto")
    })
}

/// moto as DynamoDB, changed by one request at a time (see above).
pub fn dynamodb() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = process::free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", include_str!("moto_dynamodb.py"), &port.to_string()]);
        start(cmd, port, "moto-dynamodb")
    })
}

fn start(mut cmd: Command, port: u16, name: &str) -> Moto {
    let log = std::env::temp_dir().join(format!("sluice-test-{name}-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("a log file for moto");
    cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("log handle")).stderr(out);
    let mut child = process::spawn(cmd).unwrap_or_else(|e| {
        panic!(
            "cannot start {name} ({e}); the S3, STS and DynamoDB tests need it: \
             pip install 'moto[server]==5.2.5' (./scripts/test installs it)"
        )
    });
    process::wait_for_port(&mut child, port, name, &|| std::fs::read_to_string(&log).unwrap_or_default());
    // The keeper owns the process; it dies with the test process.
    std::mem::forget(child);
    Moto { port }
}
