//! Outbound webhooks, below the domain layer: the event types the audit trail announces,
//! event patterns, `whsec_` secrets and Standard Webhooks signatures, the message bodies of
//! the `standard`, `slack` and `discord` formats, and the HTTP client that sends them, which
//! refuses loopback, private and link-local targets (at every attempt, after resolving the
//! name) unless the operator allows them, gives up after 5 s and keeps at most 1 KB of an
//! answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// How long one attempt may take, connection included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a receiver's answer is kept.
pub(crate) const RESPONSE_KEPT: usize = 1024;
/// The formats a webhook can have.
pub(crate) const FORMATS: [&str; 3] = ["standard", "slack", "discord"];
/// The event of a test delivery.
pub(crate) const TEST_EVENT: &str = "webhook.test";

/// The audit actions that webhooks announce, and the event type each is announced as.
const EVENTS: &[(&str, &str)] = &[
    ("flag.create", "flag.created"),
    ("flag.update", "flag.updated"),
    ("flag.archive", "flag.archived"),
    ("flag.restore", "flag.restored"),
    ("flag.delete", "flag.deleted"),
    ("flag.kill_switch", "flag.killed"),
    ("flag_config.update", "config.updated"),
    ("flag_config.restore", "config.restored"),
    ("segment.create", "segment.created"),
    ("segment.update", "segment.updated"),
    ("segment.delete", "segment.deleted"),
    ("scheduled_change.create", "schedule.created"),
    ("scheduled_change.cancel", "schedule.cancelled"),
    ("scheduled_change.apply", "schedule.applied"),
    ("scheduled_change.fail", "schedule.failed"),
    ("change_request.create", "change_request.created"),
    ("change_request.approve", "change_request.approved"),
    ("change_request.reject", "change_request.rejected"),
    ("change_request.apply", "change_request.applied"),
    ("change_request.stale", "change_request.stale"),
    ("change_request.fail", "change_request.failed"),
    ("change_request.cancel", "change_request.cancelled"),
    ("release.start", "release.started"),
    ("release.advance", "release.advanced"),
    ("release.pause", "release.paused"),
    ("release.resume", "release.resumed"),
    ("release.rollback", "release.rolled_back"),
    ("release.complete", "release.completed"),
    ("release.cancel", "release.cancelled"),
    ("api_key.create", "api_key.created"),
    ("api_key.revoke", "api_key.revoked"),
    ("api_key.delete", "api_key.deleted"),
    ("environment.create", "environment.created"),
    ("environment.update", "environment.updated"),
    ("environment.delete", "environment.deleted"),
];

/// The event type an audit action is announced as (`None`: not announced).
pub(crate) fn event_for(action: &str) -> Option<&'static str> {
    EVENTS.iter().find(|(a, _)| *a == action).map(|(_, e)| *e)
}

/// Every event type, in the order of the documentation.
pub(crate) fn event_types() -> impl Iterator<Item = &'static str> {
    EVENTS.iter().map(|(_, e)| *e)
}

/// Why `pattern` is not an event pattern (`*`, a family such as `flag.*`, or an event type).
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
    let known = match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(family) => event_types().any(|e| e.split_once('.').is_some_and(|(f, _)| f == family)),
        None => event_types().any(|e| e == pattern),
    };
    if known {
        Ok(())
    } else {
        Err(format!(
            "'{pattern}' is not an event type or family (such as flag.*, config.updated or *)"
        ))
    }
}

/// Whether any of `patterns` matches `event`.
pub(crate) fn matches(patterns: &[String], event: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event
            || p.strip_suffix(".*")
                .is_some_and(|family| event.split_once('.').is_some_and(|(f, _)| f == family))
    })
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub(crate) fn new_secret() -> String {
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect();
    format!("whsec_{}", BASE64.encode(bytes))
}

/// The `webhook-signature` header of Standard Webhooks: `v1,` and the base64 HMAC-SHA256 of
/// `"{id}.{timestamp}.{body}"` under the secret's decoded bytes.
pub(crate) fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // A secret this server made always decodes; anything else signs with its raw bytes.
    let key = BASE64
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mac = crate::credentials::hmac_sha256(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac))
}

/// What a message says, before a format renders it: "ann@acme.com disabled new-checkout in
/// production: checkout errors".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sentence {
    pub(crate) actor: String,
    pub(crate) verb: String,
    /// What it was done to, linked to the console when there is a link.
    pub(crate) subject: String,
    pub(crate) link: Option<String>,
    /// After the subject: " in production", " to 50 %".
    pub(crate) rest: String,
    /// The change's comment or reason.
    pub(crate) why: Option<String>,
}

impl Sentence {
    /// The sentence as plain text.
    pub(crate) fn plain(&self) -> String {
        self.render(|s| s.to_owned(), |text, _| text.to_owned())
    }

    fn render(
        &self,
        escape: impl Fn(&str) -> String,
        link: impl Fn(&str, &str) -> String,
    ) -> String {
        let subject = match &self.link {
            Some(url) => link(&escape(&self.subject), url),
            None => escape(&self.subject),
        };
        let mut text = format!(
            "{} {} {}{}",
            escape(&self.actor),
            escape(&self.verb),
            subject,
            escape(&self.rest)
        );
        if let Some(why) = self.why.as_deref().filter(|w| !w.trim().is_empty()) {
            text.push_str(": ");
            text.push_str(&escape(why));
        }
        text
    }

    /// Slack's message (mrkdwn: `&`, `<` and `>` escaped, the subject as `<url|text>`).
    fn slack(&self) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        self.render(escape, |text, url| format!("<{}|{text}>", escape(url)))
    }

    /// Discord's message (Markdown escaped, the subject as `[text](<url>)`).
    fn discord(&self) -> String {
        let escape = |s: &str| {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if "\\*_~`|[]>#".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        };
        self.render(escape, |text, url| {
            format!("[{text}](<{}>)", url.replace(['<', '>', ' '], ""))
        })
    }
}

/// Longest message a chat format carries (Discord's limit is 2000 characters).
const CHAT_LIMIT: usize = 1900;

fn clip(text: String) -> String {
    if text.chars().count() <= CHAT_LIMIT {
        return text;
    }
    let mut clipped: String = text.chars().take(CHAT_LIMIT - 1).collect();
    clipped.push('…');
    clipped
}

/// The body of a delivery in `format`: the Standard Webhooks envelope
/// `{type, timestamp, data}` (data: the audit entry with its project, environment, message
/// and link), or a chat message.
pub(crate) fn body(
    format: &str,
    event: &str,
    at: &str,
    data: &Value,
    sentence: &Sentence,
) -> String {
    let value = match format {
        "slack" => json!({"text": clip(sentence.slack())}),
        // No mention pings anyone, whatever a comment says.
        "discord" => {
            json!({"content": clip(sentence.discord()), "allowed_mentions": {"parse": []}})
        }
        _ => json!({"type": event, "timestamp": at, "data": data}),
    };
    value.to_string()
}

/// What a delivery stores: everything every format is made from, so that the body is
/// rendered in the webhook's format at each attempt (a format changed while deliveries
/// wait applies to them).
pub(crate) fn stored(event: &str, at: &str, data: &Value, sentence: &Sentence) -> String {
    json!({"type": event, "timestamp": at, "data": data, "sentence": sentence}).to_string()
}

/// The body of a stored delivery in `format`.
pub(crate) fn render(format: &str, stored: &str) -> String {
    let v: Value = serde_json::from_str(stored).unwrap_or_default();
    let sentence: Sentence = serde_json::from_value(v["sentence"].clone()).unwrap_or_default();
    body(
        format,
        v["type"].as_str().unwrap_or_default(),
        v["timestamp"].as_str().unwrap_or_default(),
        &v["data"],
        &sentence,
    )
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) status_code: Option<u16>,
    pub(crate) latency_ms: i64,
    /// Why there is no answer (refused address, timeout, connection error).
    pub(crate) error: Option<String>,
    /// The first kilobyte of the answer.
    pub(crate) response: Option<String>,
}

impl Outcome {
    /// A 2xx answer.
    pub(crate) fn delivered(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }

    /// Why the attempt failed, in a few words.
    pub(crate) fn failure(&self) -> Option<String> {
        match (self.status_code, &self.error) {
            _ if self.delivered() => None,
            (_, Some(error)) => Some(error.clone()),
            (Some(code), None) => Some(format!("the receiver answered {code}")),
            (None, None) => Some("no answer".into()),
        }
    }
}

/// Whether `ip` is one webhooks may not reach by default: loopback, private, link-local,
/// carrier-grade NAT, unspecified, multicast, broadcast, documentation, or IPv6 unique
/// local (and IPv4 addresses mapped into IPv6).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            // Only global unicast (2000::/3) is public, less documentation (2001:db8::/32)
            // and the tunnels that embed an IPv4 address (Teredo 2001::/32, 6to4
            // 2002::/16); everything else (loopback, unique local, link-local, site-local,
            // NAT64, IPv4-compatible, multicast) is refused.
            let [first, second, ..] = v6.segments();
            let global = (first & 0xe000) == 0x2000
                && !(first == 0x2001 && (second == 0x0db8 || second == 0))
                && first != 0x2002;
            !global
        }
    }
}

/// Why `url` cannot be a webhook's target (without looking its name up): it must be an
/// absolute `http` or `https` URL with a host and no credentials, and an address written
/// in it must not be private unless `allow_private`.
pub(crate) fn check_url(url: &str, allow_private: bool) -> Result<reqwest_tls::Url, String> {
    const MAX: usize = 2000;
    if url.len() > MAX {
        return Err(format!("must be at most {MAX} characters"));
    }
    let parsed = reqwest_tls::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    let host = match parsed.host() {
        Some(host) => host,
        None => return Err("must name a host".into()),
    };
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err(private_refusal(&name));
            }
            None
        }
    };
    if let Some(ip) = literal.filter(|ip| !allow_private && is_private(*ip)) {
        return Err(private_refusal(&ip.to_string()));
    }
    Ok(parsed)
}

fn private_refusal(host: &str) -> String {
    format!(
        "{host} is a loopback, private or link-local address, which webhooks may not reach \
         (an operator can allow them with --webhook-allow-private)"
    )
}

/// Name resolution that drops private addresses (unless allowed): a public name that
/// resolves to a private address cannot be used to reach the inside.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest_tls::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest_tls::dns::Name) -> reqwest_tls::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if usable.is_empty() && !found.is_empty() {
                return Err(private_refusal(&host).into());
            }
            let addrs: reqwest_tls::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client webhooks are sent with, and what messages link to.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: reqwest_tls::Client,
    pub(crate) allow_private: bool,
    /// The console's address as people reach it, without a trailing slash.
    pub(crate) public_url: String,
}

impl Sender {
    pub(crate) fn new(allow_private: bool, public_url: &str) -> anyhow::Result<Sender> {
        let client = reqwest_tls::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest_tls::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Vexil-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(Sender {
            client,
            allow_private,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// One signed POST of `body` to `url`.
    pub(crate) async fn send(&self, url: &str, secret: &str, id: &str, body: &str) -> Outcome {
        let started = Instant::now();
        let elapsed =
            |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let target = match check_url(url, self.allow_private) {
            Ok(target) => target,
            Err(e) => {
                return Outcome {
                    status_code: None,
                    latency_ms: 0,
                    error: Some(e),
                    response: None,
                };
            }
        };
        let timestamp = crate::clock::now_ms() / 1000;
        let request = self
            .client
            .post(target)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(secret, id, timestamp, body))
            .body(body.to_owned());
        let attempt = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            let mut kept = Vec::new();
            while kept.len() < RESPONSE_KEPT {
                match response.chunk().await {
                    Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                    // The status is what counts; an unreadable body is kept as far as read.
                    Ok(None) | Err(_) => break,
                }
            }
            kept.truncate(RESPONSE_KEPT);
            Ok::<_, reqwest_tls::Error>((status, kept))
        };
        match tokio::time::timeout(TIMEOUT, attempt).await {
            Ok(Ok((status, kept))) => Outcome {
                status_code: Some(status),
                latency_ms: elapsed(started),
                error: None,
                response: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
            },
            Ok(Err(e)) => Outcome {
                status_code: None,
                latency_ms: elapsed(started),
                error: Some(describe(&e)),
                response: None,
            },
            Err(_) => Outcome {
                status_code: None,
                latency_ms: elapsed(started),
                error: Some(format!("no answer within {} s", TIMEOUT.as_secs())),
                response: None,
            },
        }
    }
}

/// An error of the HTTP client in a few words, with its innermost cause (a refused address
/// names itself there).
fn describe(e: &reqwest_tls::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let detail = cause.to_string();
    if detail.is_empty() || what.contains(&detail) {
        what
    } else {
        format!("{what}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = crate::credentials::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let mac = crate::credentials::hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks specification's own example.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(BASE64.decode(&secret[6..]).map(|b| b.len()), Ok(32));
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn patterns_match_events_and_unknown_ones_are_refused() {
        let p = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(matches(&p(&["*"]), "config.updated"));
        assert!(matches(&p(&["flag.*"]), "flag.killed"));
        assert!(!matches(&p(&["flag.*"]), "config.updated"));
        assert!(matches(&p(&["release.rolled_back"]), "release.rolled_back"));
        assert!(!matches(&p(&["release.rolled_back"]), "release.started"));
        for ok in [
            "*",
            "flag.*",
            "config.updated",
            "release.rolled_back",
            "api_key.*",
        ] {
            assert_eq!(check_pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["", "flag", "flags.*", "config.update", "*.*", "user.login"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        assert_eq!(event_for("flag_config.update"), Some("config.updated"));
        assert_eq!(event_for("release.rollback"), Some("release.rolled_back"));
        assert_eq!(event_for("user.login"), None);
    }

    #[test]
    fn targets_on_private_addresses_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://api.localhost/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[2001::1]/",
            "http://[fec0::1]/",
            "http://[64:ff9b:1::1]/",
            "http://192.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let e = check_url(bad, false).expect_err(bad);
            assert!(e.contains("--webhook-allow-private"), "{bad}: {e}");
            assert!(check_url(bad, true).is_ok(), "{bad} allowed");
        }
        assert!(check_url("https://hooks.slack.com/services/T/B/X", false).is_ok());
        assert!(check_url("http://203.0.114.1/", false).is_ok());
        assert!(check_url("http://[2606:4700::1111]/", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn chat_formats_escape_what_people_typed() {
        let sentence = Sentence {
            actor: "ann@acme.com".into(),
            verb: "disabled".into(),
            subject: "new-checkout".into(),
            link: Some(
                "https://flags.acme.com/ui/acme/shop/flags/new-checkout/in/production".into(),
            ),
            rest: " in production".into(),
            why: Some("<!channel> errors & *panic*".into()),
        };
        assert_eq!(
            sentence.plain(),
            "ann@acme.com disabled new-checkout in production: <!channel> errors & *panic*"
        );
        let slack: Value = serde_json::from_str(&body(
            "slack",
            "config.updated",
            "",
            &Value::Null,
            &sentence,
        ))
        .unwrap();
        assert_eq!(
            slack["text"],
            "ann@acme.com disabled <https://flags.acme.com/ui/acme/shop/flags/new-checkout/in/production|new-checkout> \
             in production: &lt;!channel&gt; errors &amp; *panic*"
        );
        let discord: Value = serde_json::from_str(&body(
            "discord",
            "config.updated",
            "",
            &Value::Null,
            &sentence,
        ))
        .unwrap();
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
        let content = discord["content"].as_str().unwrap();
        assert!(
            content.contains("[new-checkout](<https://flags.acme.com/"),
            "{content}"
        );
        assert!(content.contains("\\*panic\\*"), "{content}");
        let long = Sentence {
            why: Some("x".repeat(5000)),
            ..sentence
        };
        let slack: Value =
            serde_json::from_str(&body("slack", "config.updated", "", &Value::Null, &long))
                .unwrap();
        assert_eq!(slack["text"].as_str().unwrap().chars().count(), CHAT_LIMIT);
    }
}
