//! Child processes that die with the test process.
//!
//! Linux's parent-death signal fires when the *thread* that spawned a child
//! exits, and test threads come and go; so every server is spawned from one
//! keeper thread that lives as long as the process.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

type Request = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that it is killed when the test process exits.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<std::sync::Mutex<Sender<Request>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("test-server-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
                // The channel never closes: the thread, and the children, live on.
            })
            .expect("spawning the keeper thread");
        std::sync::Mutex::new(tx)
    });
    let (reply, answer) = channel();
    keeper.lock().expect("keeper lock").send((cmd, reply)).expect("the keeper thread is alive");
    answer.recv().expect("the keeper answers")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits until something accepts connections on `port`, or the child exits.
pub fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &dyn Fn() -> String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before accepting connections:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not accept connections on {addr} within 60 s:\n{}", log());
}
