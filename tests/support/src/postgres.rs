//! A throwaway PostgreSQL cluster from the machine's packages.
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the
//! `postgres` user. It listens on 127.0.0.1 only, trusts local connections
//! (user `sluice`), and runs with `fsync=off`: it holds nothing worth keeping.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::process;

pub struct Cluster {
    port: u16,
    dir: PathBuf,
    server: Mutex<Child>,
}

/// The cluster of this test process, started on first use.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// A cluster of its own, for a test that restarts it: restarting the shared
/// one would cut every other test's connections.
pub fn dedicated() -> Cluster {
    Cluster::start()
}

impl Cluster {
    /// A connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://sluice@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database for one test and returns its URL.
    pub fn fresh_database(&self, prefix: &str) -> String {
        let name = crate::unique_name(prefix);
        let mut client = self.client("postgres");
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("CREATE DATABASE");
        self.url(&name)
    }

    /// A plain client, for tests to look at what a sink wrote. A server that
    /// just started may still refuse logins for a moment; that is waited out.
    pub fn client(&self, database: &str) -> postgres::Client {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match postgres::Client::connect(&self.url(database), postgres::NoTls) {
                Ok(client) => return client,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "connecting to the test cluster: {e}: {}",
                    e.as_db_error().map_or_else(|| format!("{e:?}"), |d| d.message().to_owned())
                ),
            }
        }
    }

    /// Stops the server (fast shutdown: connections are cut) and starts it
    /// again on the same port and data, as a real restart would.
    pub fn restart(&self) {
        self.stop();
        self.resume();
    }

    /// Stops the server (fast shutdown: connections are cut); [`Cluster::resume`]
    /// starts it again.
    pub fn stop(&self) {
        let mut server = self.server.lock().expect("server lock");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
        let _ = server.wait();
    }

    /// Starts a stopped server again, on the same port and data.
    pub fn resume(&self) {
        let mut server = self.server.lock().expect("server lock");
        *server = Self::spawn_server(&self.dir, self.port);
        drop(server);
        // Accepting connections is not yet accepting logins.
        self.client("postgres");
    }

    fn start() -> Cluster {
        let root = std::env::temp_dir().join(crate::unique_name("sluice-test-pg").replace('_', "-"));
        remove_stale_clusters();
        let dir = root.join("data");
        std::fs::create_dir_all(&root).expect("creating the cluster folder");
        let owner = postgres_owner();
        if let Some((uid, gid)) = owner {
            // SAFETY: chown(2) on a path we just created.
            let path = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).expect("no NUL in path");
            unsafe { libc::chown(path.as_ptr(), uid, gid) };
        }
        let mut initdb = as_owner(Command::new(bin("initdb")), owner);
        initdb.arg("-D").arg(&dir).args([
            "-U",
            "sluice",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let out = initdb.output().unwrap_or_else(|e| panic!("{}", missing("initdb", &e)));
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = process::free_port();
        let server = Self::spawn_server(&dir, port);
        let cluster = Cluster { port, dir, server: Mutex::new(server) };
        // Accepting connections is not yet accepting logins.
        cluster.client("postgres");
        cluster
    }

    fn spawn_server(dir: &Path, port: u16) -> Child {
        let owner = postgres_owner();
        let log = dir.parent().expect("data dir has a parent").join("server.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("server log");
        let mut cmd = as_owner(Command::new(bin("postgres")), owner);
        cmd.arg("-D")
            .arg(dir)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.parent().expect("data dir has a parent"))
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        let mut child = process::spawn(cmd).unwrap_or_else(|e| panic!("{}", missing("postgres", &e)));
        process::wait_for_port(&mut child, port, "postgres", &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        child
    }
}

/// As root, (uid, gid) of the `postgres` user, which the cluster runs as.
fn postgres_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        assert!(
            out.status.success(),
            "running as root, but there is no `postgres` user to own the test cluster"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a numeric id")
    };
    Some((id("-u"), id("-g")))
}

fn as_owner(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    cmd
}

/// PostgreSQL's programs: on PATH, else Debian's versioned folder.
fn bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or_default();
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
                .filter(|f| f.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

fn missing(program: &str, e: &std::io::Error) -> String {
    format!(
        "cannot run {program} ({e}); the PostgreSQL tests need a PostgreSQL server: \
         apt-get install postgresql (./scripts/test installs it)"
    )
}

/// Folders and logs of earlier test processes that died are removed.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix("sluice-test-").and_then(|rest| rest.split(['-', '.']).nth(1));
        let Some(pid) = pid.and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill(pid, 0) only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
        }
    }
}
