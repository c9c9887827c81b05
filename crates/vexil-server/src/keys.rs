//! The key ring: every active API key, by hash, in memory, so that evaluation requests are
//! authenticated without touching the database. Reloaded after each committed write and on
//! the periodic poll; `last_used_at` is recorded in batches, off the request path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use crate::audit::hash_secret;
use crate::store::api_keys::{self, ApiKey};
use crate::store::{Store, StoreResult, now_ms, now_rfc3339};

/// What a key may do (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// May read rules (SDK config, stream of rulesets) and evaluate every flag.
    Server,
    /// Browser-safe: evaluates `client_side` flags only, never sees rules or segments.
    Client,
    /// As `Client`, for mobile apps.
    Mobile,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "server" => Some(KeyKind::Server),
            "client" => Some(KeyKind::Client),
            "mobile" => Some(KeyKind::Mobile),
            _ => None,
        }
    }

    /// The visible prefix of keys of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Server => "vx_srv_",
            KeyKind::Client => "vx_cli_",
            KeyKind::Mobile => "vx_mob_",
        }
    }

    pub fn is_server(self) -> bool {
        self == KeyKind::Server
    }
}

/// An authenticated evaluation-plane credential.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub project_id: String,
    pub environment_id: String,
    pub kind: KeyKind,
    expires_at_ms: Option<i64>,
}

impl KeyInfo {
    fn from_record(k: &ApiKey) -> Option<KeyInfo> {
        Some(KeyInfo {
            id: k.id.clone(),
            project_id: k.project_id.clone(),
            environment_id: k.environment_id.clone(),
            kind: KeyKind::parse(&k.kind)?,
            expires_at_ms: k
                .expires_at
                .as_deref()
                .and_then(vexil_core::time::parse_rfc3339),
        })
    }
}

#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: RwLock<HashMap<String, Arc<KeyInfo>>>,
    /// Ids of keys used since the last flush. A std mutex: held for an insert only.
    used: Mutex<HashSet<String>>,
}

impl KeyRing {
    /// The key for `secret`, if it is active and not expired. Never touches the database.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<KeyInfo>> {
        let hash = hash_secret(secret);
        let key = self
            .by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned()?;
        if key.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return None;
        }
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.id.clone());
        Some(key)
    }

    /// Reloads the active keys from the store.
    pub async fn sync(&self, store: &Store) -> StoreResult<()> {
        let mut conn = store.read().await?;
        let keys = api_keys::active(&mut conn).await?;
        let map: HashMap<String, Arc<KeyInfo>> = keys
            .iter()
            .filter_map(|(hash, k)| Some((hash.clone(), Arc::new(KeyInfo::from_record(k)?))))
            .collect();
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Writes `last_used_at` for keys used since the last flush.
    pub async fn flush_usage(&self, store: &Store) -> StoreResult<()> {
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
