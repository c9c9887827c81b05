//! A `vexil serve` started from this build's binary for a test, on a free port, killed
//! (SIGKILL) when dropped or by [`Server::kill`]; its stderr lines arrive on `lines`.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vexil");

pub(crate) struct Server {
    child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    /// `vexil serve --database-url db` plus `args`, with `env` set (and no bootstrap token or
    /// admin email from the caller's environment), once `/health` answers.
    pub(crate) fn start(db: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                db,
            ])
            .args(args)
            .env_remove("VEXIL_BOOTSTRAP_TOKEN")
            .env_remove("VEXIL_ADMIN_EMAIL")
            .env("VEXIL_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vexil serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server {
            child,
            lines,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let health = format!("{}/health", server.base);
        loop {
            let up = runtime
                .block_on(async { reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) });
            if up {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "vexil serve did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process at once (SIGKILL on Unix: nothing is flushed or closed).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
