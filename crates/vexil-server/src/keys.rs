//! The key ring: every active API key, by hash, in memory, so that evaluation requests are
//! authenticated — and rate-limited — without touching the database. Reloaded after each
//! committed write, on cluster notifications and on the periodic poll; `last_used_at` is
//! recorded in batches, off the request path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::audit::hash_secret;
use crate::credentials;
use crate::store::api_keys::{self, ApiKey};
use crate::store::{Store, StoreResult, now_ms, now_rfc3339};

/// What a key may do (docs/concepts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// May read rules (SDK config, stream of rulesets) and evaluate every flag.
    Server,
    /// Browser-safe: evaluates `client_side` flags only, never sees rules or segments.
    Client,
    /// As `Client`, for mobile apps.
    Mobile,
}

impl KeyKind {
    pub(crate) fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "server" => Some(KeyKind::Server),
            "client" => Some(KeyKind::Client),
            "mobile" => Some(KeyKind::Mobile),
            _ => None,
        }
    }

    /// The visible prefix of keys of this kind.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            KeyKind::Server => "vx_srv_",
            KeyKind::Client => "vx_cli_",
            KeyKind::Mobile => "vx_mob_",
        }
    }

    pub(crate) fn is_server(self) -> bool {
        self == KeyKind::Server
    }
}

/// Requests per second allowed per key, with bursts of twice that.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    pub(crate) per_second: f64,
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unknown, revoked or expired.
    Invalid,
    /// Over its rate limit; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
}

/// An authenticated evaluation-plane credential.
#[derive(Debug)]
pub(crate) struct KeyInfo {
    pub(crate) id: String,
    pub(crate) environment_id: String,
    pub(crate) kind: KeyKind,
    /// Opaque token for the OFREP event stream URL (`/ofrep/v1/event-stream?token=`): it
    /// grants change notifications only, so browsers can use it where headers are impossible.
    pub(crate) stream_token: String,
    /// Signs the key's WebSocket tokens (`KeyRing::mint_stream_token`): derived from the
    /// key's hash like `stream_token`, so every node has it, but never sent anywhere.
    token_signing_key: String,
    expires_at_ms: Option<i64>,
    /// The key's token bucket. A std mutex: held for a few arithmetic operations.
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl KeyInfo {
    fn from_record(hash: &str, k: &ApiKey) -> Option<KeyInfo> {
        Some(KeyInfo {
            stream_token: hash_secret(&format!("vexil-stream:{hash}")),
            token_signing_key: hash_secret(&format!("vexil-ws-token:{hash}")),
            id: k.id.clone(),
            environment_id: k.environment_id.clone(),
            kind: KeyKind::parse(&k.kind)?,
            expires_at_ms: k
                .expires_at
                .as_deref()
                .and_then(vexil_core::time::parse_rfc3339),
            // Starts full (capped to the burst on first use).
            bucket: Mutex::new(Bucket {
                tokens: f64::MAX,
                updated: Instant::now(),
            }),
        })
    }

    /// Takes one token, refilling at `limit.per_second` up to a burst of twice that.
    fn take(&self, limit: RateLimit) -> Result<(), Refusal> {
        let burst = limit.per_second * 2.0;
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.updated).as_secs_f64() * limit.per_second;
        b.tokens = (b.tokens.min(burst) + refill).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / limit.per_second;
            Err(Refusal::RateLimited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeyRing {
    by_hash: RwLock<HashMap<String, Arc<KeyInfo>>>,
    by_stream_token: RwLock<HashMap<String, Arc<KeyInfo>>>,
    by_id: RwLock<HashMap<String, Arc<KeyInfo>>>,
    rate_limit: Option<RateLimit>,
    /// Ids of keys used since the last flush. A std mutex: held for an insert only.
    used: Mutex<HashSet<String>>,
    /// Offline mode: every secret and stream token is this server key.
    open: RwLock<Option<Arc<KeyInfo>>>,
}

impl KeyRing {
    /// A key ring limiting each key to `rate_limit` (none: unlimited).
    pub(crate) fn new(rate_limit: Option<RateLimit>) -> KeyRing {
        KeyRing {
            rate_limit,
            ..KeyRing::default()
        }
    }

    /// The key for `secret` if it is active, not expired and within its rate limit. Never
    /// touches the database.
    pub(crate) fn authenticate(&self, secret: &str) -> Result<Arc<KeyInfo>, Refusal> {
        if let Some(open) = self.open.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(open);
        }
        let hash = hash_secret(secret);
        let key = self
            .by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned();
        self.admit(key.ok_or(Refusal::Invalid)?)
    }

    /// `key` if it has not expired and is within its rate limit, recorded as used.
    fn admit(&self, key: Arc<KeyInfo>) -> Result<Arc<KeyInfo>, Refusal> {
        if key.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Err(Refusal::Invalid);
        }
        if let Some(limit) = self.rate_limit {
            key.take(limit)?;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&key.id) {
            used.insert(key.id.clone());
        }
        Ok(key)
    }

    /// The key behind an event-stream token, if active and not expired.
    pub(crate) fn by_stream_token(&self, token: &str) -> Option<Arc<KeyInfo>> {
        if let Some(open) = self.open.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(open);
        }
        let key = self
            .by_stream_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()?;
        key.expires_at_ms
            .is_none_or(|at| at > now_ms())
            .then_some(key)
    }

    /// A stream token for `key` that expires `ttl_ms` from now: where a browser cannot send
    /// headers (WebSocket), it stands for the key on one connection's URL. It names the key
    /// and its expiry, signed with a key derived from the key's hash that is never sent
    /// anywhere, so any node of a cluster checks it without state:
    /// `vxst.<key id>.<expiry ms>.<hex HMAC-SHA256>`.
    pub(crate) fn mint_stream_token(key: &KeyInfo, ttl_ms: i64) -> (String, i64) {
        let expires_at_ms = now_ms().saturating_add(ttl_ms);
        let claim = format!("vxst.{}.{expires_at_ms}", key.id);
        let mac = credentials::hmac_sha256(key.token_signing_key.as_bytes(), claim.as_bytes());
        (format!("{claim}.{}", hex::encode(mac)), expires_at_ms)
    }

    /// The key behind a token of `mint_stream_token` that is genuine, unexpired and not
    /// valid for longer than `max_ttl_ms` (plus a little clock skew between nodes), if the
    /// key is still active and within its rate limit (the token counts as one use).
    pub(crate) fn by_minted_stream_token(
        &self,
        token: &str,
        max_ttl_ms: i64,
    ) -> Result<Arc<KeyInfo>, Refusal> {
        if let Some(open) = self.open.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(open);
        }
        let (claim, mac) = token.rsplit_once('.').ok_or(Refusal::Invalid)?;
        let mut parts = claim.splitn(3, '.');
        let (Some("vxst"), Some(id), Some(expires)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Invalid);
        };
        let expires_at_ms: i64 = expires.parse().map_err(|_| Refusal::Invalid)?;
        let now = now_ms();
        if expires_at_ms <= now || expires_at_ms > now.saturating_add(max_ttl_ms + 5_000) {
            return Err(Refusal::Invalid);
        }
        let key = self
            .by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or(Refusal::Invalid)?;
        let expected = credentials::hmac_sha256(key.token_signing_key.as_bytes(), claim.as_bytes());
        if !credentials::constant_time_eq(hex::encode(expected).as_bytes(), mac.as_bytes()) {
            return Err(Refusal::Invalid);
        }
        self.admit(key)
    }

    /// Tests: a server key with this id and secret, as `sync` would load it.
    #[cfg(test)]
    pub(crate) fn insert_for_tests(&self, id: &str, secret: &str) -> Arc<KeyInfo> {
        let hash = hash_secret(secret);
        let key = Arc::new(KeyInfo {
            id: id.to_owned(),
            environment_id: "env".into(),
            kind: KeyKind::Server,
            stream_token: hash_secret(&format!("vexil-stream:{hash}")),
            token_signing_key: hash_secret(&format!("vexil-ws-token:{hash}")),
            expires_at_ms: None,
            bucket: Mutex::new(Bucket {
                tokens: f64::MAX,
                updated: Instant::now(),
            }),
        });
        let write = |map: &RwLock<HashMap<String, Arc<KeyInfo>>>, at: String| {
            map.write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(at, key.clone());
        };
        write(&self.by_hash, hash);
        write(&self.by_stream_token, key.stream_token.clone());
        write(&self.by_id, id.to_owned());
        key
    }

    /// Offline mode: from now on every secret is a server key of `environment_id`.
    pub(crate) fn open_to_any_key(&self, environment_id: &str) {
        let info = KeyInfo {
            id: "offline".into(),
            environment_id: environment_id.to_owned(),
            kind: KeyKind::Server,
            stream_token: "offline".into(),
            token_signing_key: "offline".into(),
            expires_at_ms: None,
            bucket: Mutex::new(Bucket {
                tokens: f64::MAX,
                updated: Instant::now(),
            }),
        };
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(info));
    }

    /// Reloads the active keys from the store.
    pub(crate) async fn sync(&self, store: &Store) -> StoreResult<()> {
        let mut conn = store.read().await?;
        let keys = api_keys::active(&mut conn).await?;
        let mut ring = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        // Keys that are still active keep their record, and so their rate-limit bucket.
        let map: HashMap<String, Arc<KeyInfo>> = keys
            .iter()
            .filter_map(|(hash, k)| {
                let info = ring
                    .get(hash)
                    .cloned()
                    .or_else(|| KeyInfo::from_record(hash, k).map(Arc::new))?;
                Some((hash.clone(), info))
            })
            .collect();
        let tokens = map
            .values()
            .map(|k| (k.stream_token.clone(), k.clone()))
            .collect();
        let ids = map.values().map(|k| (k.id.clone(), k.clone())).collect();
        *ring = map;
        *self
            .by_stream_token
            .write()
            .unwrap_or_else(|p| p.into_inner()) = tokens;
        *self.by_id.write().unwrap_or_else(|p| p.into_inner()) = ids;
        Ok(())
    }

    /// Writes `last_used_at` for keys used since the last flush.
    pub(crate) async fn flush_usage(&self, store: &Store) -> StoreResult<()> {
        let ids: Vec<String> =
            std::mem::take(&mut *self.used.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // Not a `Store::write`: usage stamps are not audited mutations and need no ordering.
        let mut conn = store.read().await?;
        api_keys::touch(&mut conn, &ids, &now_rfc3339()).await
    }
}
