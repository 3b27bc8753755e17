//! kinesis-local (npm; a build of kinesis-mock) as Kinesis on 127.0.0.1.
//!
//! It runs under the machine's `node` from the package that `./scripts/test`
//! installs in `tests/support/node` (pinned by its package-lock.json). It has
//! no setting for its address and binds every interface, so
//! `node/loopback.cjs`, preloaded with `node -r`, pins its listens to
//! 127.0.0.1. It starts empty; tests create their own streams.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::process;

/// Its defaults for ARNs, set explicitly so that an `AWS_REGION` or
/// `AWS_ACCOUNT_ID` in the test environment cannot move them.
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

pub struct Kinesis {
    port: u16,
    tls_port: u16,
}

impl Kinesis {
    /// The endpoint for `AWS_ENDPOINT_URL_KINESIS` (plain HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The same server over HTTPS, with kinesis-mock's self-signed certificate.
    pub fn tls_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    /// The ARN of the stream `name` in this server. The server keeps streams
    /// apart by the region a request is signed for and, when the access key
    /// id is 12 digits, by that account; so this is the ARN for clients that
    /// sign for [`Kinesis::region`] with any other access key.
    pub fn stream_arn(&self, name: &str) -> String {
        format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
    }

    /// The region of the server's ARNs: the one clients must sign for.
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// A Kinesis client for this server, with fake credentials.
    pub fn client(&self) -> aws_sdk_kinesis::Client {
        use aws_sdk_kinesis::config::{BehaviorVersion, Builder, Credentials, Region};
        let config = Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }
}

/// The kinesis-local server of this test process, started on first use.
pub fn shared() -> &'static Kinesis {
    static KINESIS: OnceLock<Kinesis> = OnceLock::new();
    KINESIS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
        let package = dir.join("node_modules").join("kinesis-local");
        let install =
            format!("npm ci --prefix {} --no-audit --no-fund (./scripts/test does it)", dir.display());
        assert!(
            package.join("main.js").is_file(),
            "kinesis-local is not installed in {}; the Kinesis tests need it: {install}",
            package.display()
        );
        let port = process::free_port();
        let tls_port = loop {
            let p = process::free_port();
            if p != port {
                break p;
            }
        };
        let log = std::env::temp_dir().join(format!("sluice-test-kinesis-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("a log file for kinesis-local");
        let mut cmd = Command::new("node");
        cmd.arg("-r")
            .arg(dir.join("loopback.cjs"))
            .arg(package.join("main.js"))
            // Persisted data would be read from and written under the
            // working directory; none is kept, but be somewhere harmless.
            .current_dir(std::env::temp_dir())
            .env("KINESIS_MOCK_CERT_PATH", package.join("server.json"))
            .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
            .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
            .env("AWS_ACCOUNT_ID", ACCOUNT)
            .env("AWS_REGION", REGION)
            .env_remove("INITIALIZE_STREAMS")
            .env("SHOULD_PERSIST_DATA", "false")
            .env("LOAD_DATA_IF_EXISTS", "false")
            // One server holds every test's streams; AWS's default limits
            // are per account, not per test.
            .env("SHARD_LIMIT", "10000")
            .env("ON_DEMAND_STREAM_COUNT_LIMIT", "1000")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        // Streams and consumers change state at once instead of after 500 ms.
        for operation in [
            "CREATE_STREAM",
            "DELETE_STREAM",
            "REGISTER_STREAM_CONSUMER",
            "DEREGISTER_STREAM_CONSUMER",
            "START_STREAM_ENCRYPTION",
            "STOP_STREAM_ENCRYPTION",
            "MERGE_SHARDS",
            "SPLIT_SHARD",
            "UPDATE_SHARD_COUNT",
            "UPDATE_STREAM_MODE",
        ] {
            cmd.env(format!("{operation}_DURATION"), "0ms");
        }
        let mut child = process::spawn(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot start node ({e}); the Kinesis tests run kinesis-local under Node.js 20: \
                 install Node.js 20 with npm, then {install}"
            )
        });
        process::wait_for_port(&mut child, port, "kinesis-local", &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        // The keeper owns the process; it dies with the test process.
        std::mem::forget(child);
        Kinesis { port, tls_port }
    })
}
