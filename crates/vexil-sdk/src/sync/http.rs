//! The SDK's requests: `GET /api/v1/sdk/config` (with `If-None-Match`),
//! `GET /api/v1/sdk/stream` (with `Last-Event-ID`), and the reports `POST /api/v1/sdk/metrics`
//! and `POST /api/v1/track`, all authenticated by the server key, which is kept only inside
//! a header value marked sensitive (never logged or printed).

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use vexil_core::Ruleset;

/// Why a request failed, in words fit for a log line and the status reason.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SyncError {
    /// Connection refused, reset, DNS, TLS…: the server is unreachable.
    #[error("server unreachable: {0}")]
    Transport(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {0}")]
    Status(StatusCode),
    /// A response the SDK cannot use (too large, not JSON, an invalid ruleset, not SSE).
    #[error("invalid response: {0}")]
    Invalid(String),
}

impl SyncError {
    /// Whether trying again later may succeed (the network, a timeout, a server error, 408,
    /// 429); other answers refuse what was sent, and sending it again would not help.
    pub(crate) fn transient(&self) -> bool {
        match self {
            SyncError::Transport(_) | SyncError::Timeout(_) => true,
            SyncError::Status(s) => {
                s.is_server_error()
                    || *s == StatusCode::REQUEST_TIMEOUT
                    || *s == StatusCode::TOO_MANY_REQUESTS
            }
            SyncError::Invalid(_) => false,
        }
    }

    /// The server refused the key: retrying will not help until the key is fixed.
    pub(crate) fn key_rejected(&self) -> bool {
        matches!(self, SyncError::Status(s) if *s == StatusCode::UNAUTHORIZED || *s == StatusCode::FORBIDDEN)
    }

    fn from_reqwest(e: &reqwest::Error) -> SyncError {
        // reqwest's message names the URL, never headers; the source chain says why.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        SyncError::Transport(message)
    }
}

/// The outcome of a config fetch.
#[derive(Debug)]
pub(crate) enum Fetched {
    NotModified,
    Ruleset(Box<Ruleset>),
}

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    config_url: Url,
    stream_url: Url,
    metrics_url: Url,
    track_url: Url,
    auth: HeaderValue,
    request_timeout: Duration,
    max_bytes: usize,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("config_url", &self.config_url.as_str())
            .field("stream_url", &self.stream_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(
        client: reqwest::Client,
        base: &Url,
        auth: HeaderValue,
        request_timeout: Duration,
        max_bytes: usize,
    ) -> Result<Http, url_error::Error> {
        Ok(Http {
            client,
            config_url: url_error::join(base, "api/v1/sdk/config")?,
            stream_url: url_error::join(base, "api/v1/sdk/stream")?,
            metrics_url: url_error::join(base, "api/v1/sdk/metrics")?,
            track_url: url_error::join(base, "api/v1/track")?,
            auth,
            request_timeout,
            max_bytes,
        })
    }

    /// Sends evaluation counts (`POST /api/v1/sdk/metrics`).
    pub(crate) async fn send_metrics(&self, body: &serde_json::Value) -> Result<(), SyncError> {
        self.post(&self.metrics_url, body).await
    }

    /// Sends tracked events (`POST /api/v1/track`).
    pub(crate) async fn send_events(&self, body: &serde_json::Value) -> Result<(), SyncError> {
        self.post(&self.track_url, body).await
    }

    async fn post(&self, url: &Url, body: &serde_json::Value) -> Result<(), SyncError> {
        let request = self
            .client
            .post(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let send = async {
            let response = request
                .send()
                .await
                .map_err(|e| SyncError::from_reqwest(&e))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SyncError::Status(response.status()))
            }
        };
        tokio::time::timeout(self.request_timeout, send)
            .await
            .unwrap_or(Err(SyncError::Timeout(self.request_timeout)))
    }

    /// Fetches the ruleset; `NotModified` when the server is still at `known_version`.
    pub(crate) async fn fetch_config(
        &self,
        known_version: Option<u64>,
    ) -> Result<Fetched, SyncError> {
        let mut request = self
            .client
            .get(self.config_url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(v) = known_version {
            request = request.header(reqwest::header::IF_NONE_MATCH, format!("\"{v}\""));
        }
        let fetch = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| SyncError::from_reqwest(&e))?;
            match response.status() {
                StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
                StatusCode::OK => {}
                other => return Err(SyncError::Status(other)),
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| SyncError::from_reqwest(&e))?
            {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(SyncError::Invalid(format!(
                        "ruleset larger than {} bytes",
                        self.max_bytes
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| SyncError::Invalid("ruleset is not UTF-8".into()))?;
            let ruleset = Ruleset::from_json(text)
                .map_err(|e| SyncError::Invalid(format!("ruleset does not parse: {e}")))?;
            Ok(Fetched::Ruleset(Box::new(ruleset)))
        };
        tokio::time::timeout(self.request_timeout, fetch)
            .await
            .unwrap_or(Err(SyncError::Timeout(self.request_timeout)))
    }

    /// Opens the event stream, resuming after `last_event_id`; returns once the response
    /// headers say it is an event stream.
    pub(crate) async fn open_stream(
        &self,
        last_event_id: Option<u64>,
    ) -> Result<reqwest::Response, SyncError> {
        let mut request = self
            .client
            .get(self.stream_url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = tokio::time::timeout(self.request_timeout, request.send())
            .await
            .map_err(|_| SyncError::Timeout(self.request_timeout))?
            .map_err(|e| SyncError::from_reqwest(&e))?;
        if response.status() != StatusCode::OK {
            return Err(SyncError::Status(response.status()));
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_sse {
            return Err(SyncError::Invalid(
                "the stream is not text/event-stream".into(),
            ));
        }
        Ok(response)
    }
}

/// Joining the API paths onto the base URL the caller gave.
pub(crate) mod url_error {
    use reqwest::Url;

    #[derive(Debug, Clone, thiserror::Error)]
    #[error("invalid server URL: {0}")]
    pub(crate) struct Error(pub String);

    /// `base` + `path`, keeping any path prefix of `base` (a server behind a reverse proxy
    /// at `https://example.com/vexil/`).
    pub(crate) fn join(base: &Url, path: &str) -> Result<Url, Error> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let with_slash = format!("{}/", base.path());
            base.set_path(&with_slash);
        }
        base.join(path).map_err(|e| Error(e.to_string()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn joins_with_or_without_prefix_and_slash() {
            for (base, want) in [
                ("http://h:8080", "http://h:8080/api/v1/sdk/config"),
                ("http://h:8080/", "http://h:8080/api/v1/sdk/config"),
                ("https://h/vexil", "https://h/vexil/api/v1/sdk/config"),
                ("https://h/vexil/", "https://h/vexil/api/v1/sdk/config"),
            ] {
                let url = Url::parse(base).unwrap();
                assert_eq!(join(&url, "api/v1/sdk/config").unwrap().as_str(), want);
            }
        }
    }
}
