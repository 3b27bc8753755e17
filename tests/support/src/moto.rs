//! `moto_server` (PyPI `moto[server]`) as S3 and STS on 127.0.0.1.

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
}

/// The moto server of this test process, started on first use.
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = process::free_port();
        let log = std::env::temp_dir().join(format!("sluice-test-moto-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("a log file for moto");
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        let mut child = process::spawn(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot start moto_server ({e}); the S3 and STS tests need it: \
                 pip install 'moto[server]==5.2.5' (./scripts/test installs it)"
            )
        });
        process::wait_for_port(&mut child, port, "moto_server", &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        // The keeper owns the process; it dies with the test process.
        std::mem::forget(child);
        Moto { port }
    })
}
