//! A small WebDriver client (the W3C protocol over HTTP, with reqwest) driving headless
//! Chromium through chromedriver, for the console's browser tests. Without Chromium or
//! chromedriver the tests skip with a visible message, unless `VEXIL_REQUIRE_BROWSER=1`
//! (set by CI), which makes the skip a failure.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; chromedriver is killed when dropped.
pub(crate) struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}/session/{id}`.
    session: String,
    driver: Child,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub(crate) struct Element(String);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn skip(reason: &str) -> Option<Browser> {
    if std::env::var("VEXIL_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("VEXIL_REQUIRE_BROWSER=1 but {reason}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** console browser tests SKIPPED: {reason} (install the Debian packages chromium and chromium-driver) ***\n"
    );
    None
}

impl Browser {
    /// A new headless session, or `None` (after a visible notice) without a browser.
    pub(crate) async fn start() -> Option<Browser> {
        let Some(driver_bin) = find_program(&["chromedriver"]) else {
            return skip("chromedriver is not on PATH");
        };
        let Some(chromium) = find_program(&["chromium", "chromium-browser", "google-chrome"])
        else {
            return skip("chromium is not on PATH");
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=en-US"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {r}"))
            .to_owned();
        Some(Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        if let Some(error) = r["value"]["error"].as_str() {
            panic!("WebDriver {path}: {error}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub(crate) async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page and returns its result.
    pub(crate) async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Answers the page's confirmation dialogs with yes, and its prompts with `answer`.
    pub(crate) async fn accept_dialogs(&self, answer: &str) {
        self.script(
            "window.confirm = () => true; window.prompt = () => arguments[0];",
            json!([answer]),
        )
        .await;
    }

    /// The first element matching `css`, waiting up to 5 s for it to appear.
    pub(crate) async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            let found = self.find_all(css).await;
            if let Some(e) = found.into_iter().next() {
                return e;
            }
            if started.elapsed() > Duration::from_secs(5) {
                let text = self.page_text().await;
                panic!("no element matches {css} on {}:\n{text}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) async fn click(&self, css: &str) {
        let e = self.find(css).await;
        // Into the middle of the viewport, clear of the sticky save bar, as a person
        // scrolls to what they click.
        self.script(
            "arguments[0].scrollIntoView({block: 'center'});",
            json!([{ELEMENT: e.0}]),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the text of the input or textarea matching `css`.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Chooses the option with this value in the select matching `css`.
    pub(crate) async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    pub(crate) async fn value(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/property/value", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The page's visible text.
    pub(crate) async fn page_text(&self) -> String {
        self.script(
            "return document.body ? document.body.innerText : '';",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits up to 5 s for the page's text to contain `text`.
    pub(crate) async fn wait_for_text(&self, text: &str) {
        let started = Instant::now();
        loop {
            let page = self.page_text().await;
            if page.contains(text) {
                return;
            }
            if started.elapsed() > Duration::from_secs(5) {
                panic!("'{text}' not on {}:\n{page}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn cookie(&self, name: &str) -> Option<String> {
        let v = self.call(reqwest::Method::GET, "/cookie", None).await;
        v.as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_owned))
    }

    pub(crate) async fn set_window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the viewport.
    pub(crate) async fn screenshot(&self, path: &Path) {
        use base64_png::decode;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = decode(v.as_str().unwrap_or_default());
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session first, so that chromedriver quits Chromium: killing the driver
        // alone leaves the browser running after the test. A plain blocking request (drop
        // cannot await), bounded in time.
        if let Some((host, path)) = self
            .session
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            use std::io::{Read as _, Write as _};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 decoding (the screenshot's encoding), without another dependency.
mod base64_png {
    pub(super) fn decode(s: &str) -> Vec<u8> {
        let value = |c: u8| -> Option<u32> {
            Some(u32::from(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            }))
        };
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0);
        for v in s.bytes().filter_map(value) {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
            }
        }
        out
    }
}
