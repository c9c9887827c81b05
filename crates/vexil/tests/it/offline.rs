//! `vexil serve --offline FILE` through the real binary: OFREP answers from the file for
//! any API key; an edit of the file reaches an SSE subscriber within a second; an invalid
//! edit is reported and the last good version keeps serving; the management API is off.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::Server;

const DOCUMENT: &str = "\
segments:
  - key: staff
    included: [ann]
flags:
  - key: dark-mode
    environments:
      production:
        enabled: true
        off_variation: 'off'
        fallthrough: {variation: 'off'}
        rules:
          - clauses: [{attribute: '', op: in_segment, values: [staff]}]
            serve: {variation: 'on'}
";

fn ofrep(rt: &tokio::runtime::Runtime, base: &str, key: &str, user: &str) -> Value {
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{base}/ofrep/v1/evaluate/flags/dark-mode"))
            .bearer_auth(key)
            .json(&json!({"context": {"targetingKey": user}}))
            .send()
            .await
            .expect("OFREP answers");
        r.json().await.expect("JSON")
    })
}

#[test]
fn offline_mode_serves_a_file_and_streams_its_edits() {
    let dir = std::env::temp_dir().join(format!("vexil-offline-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flags.yaml");
    fs::write(&file, DOCUMENT).unwrap();
    let server = Server::start(
        // Ignored offline: there is no database to name.
        "sqlite:///nonexistent/never-created.db",
        &["--offline", file.to_str().unwrap()],
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Any key: staff by the rule, everyone else off.
    assert_eq!(
        ofrep(&rt, &server.base, "any-key-at-all", "ann")["value"],
        true
    );
    assert_eq!(ofrep(&rt, &server.base, "another", "bob")["value"], false);
    // The management API and the console are off.
    let status = rt.block_on(async {
        reqwest::get(format!("{}/api/v1/projects", server.base))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 404);

    // A subscriber of the SDK stream sees an edit within a second.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let base = server.base.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut r = reqwest::Client::new()
                .get(format!("{base}/api/v1/sdk/stream"))
                .header("x-api-key", "whatever")
                .send()
                .await
                .unwrap();
            while let Ok(Some(chunk)) = r.chunk().await {
                if tx
                    .send(String::from_utf8_lossy(&chunk).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
    });
    // The first message is the whole ruleset.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("dark-mode") {
        assert!(Instant::now() < deadline, "no initial ruleset: {seen}");
        if let Ok(text) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&text);
        }
    }
    let edited = DOCUMENT.replace(
        "fallthrough: {variation: 'off'}",
        "fallthrough: {variation: 'on'}",
    );
    fs::write(&file, &edited).unwrap();
    let written = Instant::now();
    let mut streamed = String::new();
    while !streamed.contains(r#""fallthrough":{"variation":"on"}"#) {
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "the edit was not streamed: {streamed}"
        );
        if let Ok(text) = rx.recv_timeout(Duration::from_millis(20)) {
            streamed.push_str(&text);
        }
    }
    let took = written.elapsed();
    assert!(took < Duration::from_secs(1), "streamed after {took:?}");
    assert_eq!(ofrep(&rt, &server.base, "k", "bob")["value"], true);

    // An invalid edit: reported, and the last good version keeps serving.
    fs::write(
        &file,
        "flags: [ {key: dark-mode, environments: {production: {enabled: maybe}}}",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ofrep(&rt, &server.base, "k", "bob")["value"], true);
    let mut log = String::new();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(50)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("still serving the last good version"), "{log}");
    let _ = fs::remove_dir_all(dir);
}
