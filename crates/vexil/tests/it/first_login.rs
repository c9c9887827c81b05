//! The operator's first login, as the README describes it, through the real binary: the
//! first `vexil serve` prints the admin's one-time password, which logs in as owner of
//! `default`; `vexil admin reset-password` and `vexil admin create-user` work on the same
//! database; a restart prints nothing again.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::Server;

const BIN: &str = env!("CARGO_BIN_EXE_vexil");

fn serve(db: &str) -> Server {
    Server::start(db, &[], &[])
}

/// Minimal blocking helpers over reqwest's async client.
mod reqwest {
    pub(crate) use ::reqwest::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub(crate) fn login(base: &str, email: &str, password: &str) -> (u16, serde_json::Value) {
        runtime().block_on(async {
            let r = Client::new()
                .post(format!("{base}/api/v1/auth/login"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login request");
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        })
    }
}

/// Collects stderr lines until one contains `needle` (or the time is up).
fn wait_for_line(server: &Server, needle: &str, within: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = server.lines.recv_timeout(Duration::from_millis(100)) {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return Some(seen);
            }
        }
    }
    None
}

fn admin(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("admin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vexil admin runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("vexil admin finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no '{label}' in:\n{text}"))
}

#[test]
fn first_start_prints_a_one_time_password_and_admin_commands_manage_users() {
    let dir = std::env::temp_dir().join(format!("vexil-first-login-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db_path = dir.join("vexil.db");
    let db = format!("sqlite://{}", db_path.display());

    // First start: the password is printed once.
    let server = serve(&db);
    let lines = wait_for_line(&server, "password:", Duration::from_secs(10))
        .expect("the first start prints the admin's password");
    let printed = lines.join("\n");
    let email = after(&printed, "email:").to_owned();
    let password = after(&printed, "password:").to_owned();
    assert_eq!(email, "admin@localhost");
    assert!(password.len() >= 16, "{password}");
    let (status, body) = reqwest::login(&server.base, &email, &password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organizations"][0]["key"], "default");
    assert_eq!(body["organizations"][0]["role"], "owner");
    drop(server);

    // Operators reset a password and create users on the same database.
    let (ok, out, err) = admin(
        &[
            "reset-password",
            "--email",
            "ADMIN@localhost",
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let new_password = after(&out, "new password (shown only now):").to_owned();
    let (ok, out, err) = admin(
        &[
            "create-user",
            "--email",
            "bob@example.com",
            "--organization",
            "default",
            "--role",
            "editor",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("bob's long password\n"),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("member of 'default' as editor"), "{out}");
    assert!(
        !out.contains("bob's long password"),
        "a given password is not echoed"
    );
    // Clear errors, nothing written.
    let (ok, _, err) = admin(
        &[
            "create-user",
            "--email",
            "bob@example.com",
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = admin(
        &[
            "create-user",
            "--email",
            "c@example.com",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("short\n"),
    );
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = admin(
        &[
            "reset-password",
            "--email",
            "nobody@example.com",
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(!ok && err.contains("no user"), "{err}");

    // A restart prints no password; the old one is dead, the new ones work.
    let server = serve(&db);
    assert!(
        wait_for_line(&server, "password:", Duration::from_secs(2)).is_none(),
        "no password on later starts"
    );
    assert_eq!(reqwest::login(&server.base, &email, &password).0, 401);
    assert_eq!(reqwest::login(&server.base, &email, &new_password).0, 200);
    let (status, body) = reqwest::login(&server.base, "bob@example.com", "bob's long password");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organizations"][0]["role"], "editor");
    drop(server);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
