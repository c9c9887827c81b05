//! An OpenFeature provider (feature `openfeature`): `VexilProvider` resolves flags locally
//! through a [`Client`], and reports its status (`NOT_READY`, `READY`, `STALE`, `ERROR`).
//!
//! The `open-feature` crate (0.3) has no provider-event API, so the provider's events —
//! `PROVIDER_READY`, `PROVIDER_CONFIGURATION_CHANGED`, `PROVIDER_STALE`, `PROVIDER_ERROR` —
//! are offered as a stream of our own, [`VexilProvider::events`], with the semantics of the
//! OpenFeature specification (§5): a handler attached while the provider is already ready or
//! stale hears that state at once.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use open_feature::{EvaluationContext, OpenFeature};
//! use vexil_sdk::openfeature::{ProviderEvent, VexilProvider};
//!
//! let client = vexil_sdk::Client::builder("http://127.0.0.1:8080", "vx_srv_…").build()?;
//! let provider = VexilProvider::new(client);
//! let mut events = provider.events();
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         if let ProviderEvent::ConfigurationChanged { flags_changed } = event {
//!             println!("changed: {flags_changed:?}");
//!         }
//!     }
//! });
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(provider).await; // waits for the first fetch (10 s at most)
//! let client = api.create_client();
//! let context = EvaluationContext::default().with_targeting_key("user-1");
//! let on = client
//!     .get_bool_value("new-checkout", Some(&context), None)
//!     .await
//!     .unwrap_or(false);
//! # Ok(()) }
//! ```

use std::time::Duration;

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue, Value as OfValue,
};
use serde_json::Value;
use tokio::sync::broadcast;
use vexil_core::Context;

use crate::client::Client;
use crate::detail::ErrorCode;
use crate::events::ClientEvent;
use crate::status::{State, Status};

/// A provider for the `open-feature` crate that evaluates locally through a [`Client`].
#[derive(Debug)]
pub struct VexilProvider {
    client: Client,
    metadata: ProviderMetadata,
    init_timeout: Duration,
}

impl VexilProvider {
    /// A provider over `client` (built with [`Client::builder`]).
    pub fn new(client: Client) -> VexilProvider {
        VexilProvider {
            client,
            metadata: ProviderMetadata::new("Vexil"),
            init_timeout: Duration::from_secs(10),
        }
    }

    /// How long `initialize` (run by `OpenFeature::set_provider`) waits for the first
    /// fetch (default 10 s); after that the provider is `NOT_READY` (or `STALE` with a
    /// bootstrap ruleset) and keeps trying in the background.
    pub fn with_init_timeout(mut self, timeout: Duration) -> VexilProvider {
        self.init_timeout = timeout;
        self
    }

    /// The underlying client (for listeners, status, or typed getters).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Tracks that `key` happened to `context` (OpenFeature's tracking API: `open-feature`
    /// 0.3 for Rust has no tracking call, so it is a method of the provider); see
    /// [`Client::track`].
    pub fn track(&self, key: &str, context: &EvaluationContext, value: Option<f64>) {
        self.client.track(key, &to_context(context), value);
    }

    /// The provider's events, starting with its current state if that is `READY`, `STALE`
    /// or `ERROR`.
    pub fn events(&self) -> ProviderEvents {
        // Subscribe first: a transition between reading the status and subscribing would
        // otherwise be lost.
        let rx = self.client.subscribe();
        let status = self.client.status();
        let pending = state_event(&status);
        ProviderEvents {
            rx,
            last: status_state(&status),
            pending,
            client: self.client.clone(),
        }
    }

    fn resolve<T>(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
        type_name: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let context = to_context(context);
        let result = self.client.with_detail(flag_key, &context, |d| {
            let Some(value) = d.value else {
                let code = d.reason.error_code.map_or(ErrorCode::General, Into::into);
                return Err(error(code, flag_key));
            };
            let Some(value) = convert(value) else {
                return Err(EvaluationError::builder()
                    .code(EvaluationErrorCode::TypeMismatch)
                    .message(format!("flag '{flag_key}' is not of type {type_name}"))
                    .build());
            };
            let mut metadata = FlagMetadata::default();
            if let Some(v) = d.flag_version.and_then(|v| i64::try_from(v).ok()) {
                metadata.add_value("flagVersion", v);
            }
            if let Some(id) = d.reason.rule_id {
                metadata.add_value("ruleId", id);
            }
            if let Some(i) = d.reason.rule_index.and_then(|i| i64::try_from(i).ok()) {
                metadata.add_value("ruleIndex", i);
            }
            Ok(ResolutionDetails {
                value,
                variant: d.variation.map(str::to_owned),
                reason: Some(reason(d.ofrep_reason())),
                flag_metadata: Some(metadata),
            })
        });
        result.unwrap_or_else(|code| Err(error(code, flag_key)))
    }
}

#[open_feature::async_trait]
impl FeatureProvider for VexilProvider {
    async fn initialize(&mut self, _context: &EvaluationContext) {
        if let Err(e) = self.client.wait_for_initialization(self.init_timeout).await {
            tracing::warn!(error = %e, "vexil provider not ready yet; still trying");
        }
    }

    fn status(&self) -> ProviderStatus {
        let status = self.client.status();
        if status.key_rejected {
            return ProviderStatus::Error;
        }
        match status.state {
            State::NotReady => ProviderStatus::NotReady,
            State::Ready => ProviderStatus::Ready,
            State::Stale => ProviderStatus::STALE,
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, context, "boolean", Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(
            flag_key,
            context,
            "integer",
            <i64 as crate::FlagValue>::from_json,
        )
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, context, "float", Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, context, "string", |v| {
            v.as_str().map(str::to_owned)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, context, "object", |v| {
            match OfValue::try_from(v) {
                Ok(OfValue::Struct(s)) => Some(s),
                _ => None,
            }
        })
    }
}

/// A provider event (OpenFeature specification §5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// `PROVIDER_READY`: the provider has the server's current data.
    Ready,
    /// `PROVIDER_CONFIGURATION_CHANGED`: flag definitions changed.
    ConfigurationChanged { flags_changed: Vec<String> },
    /// `PROVIDER_STALE`: the server is unreachable; the last known data is served.
    Stale { message: String },
    /// `PROVIDER_ERROR`: the server rejected the key.
    Error { message: String },
}

/// The stream of [`ProviderEvent`]s from [`VexilProvider::events`].
#[derive(Debug)]
pub struct ProviderEvents {
    rx: broadcast::Receiver<ClientEvent>,
    last: Option<EventState>,
    pending: Option<ProviderEvent>,
    /// To re-read the status when the channel skipped events.
    client: Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventState {
    Ready,
    Stale,
    Error,
}

fn status_state(status: &Status) -> Option<EventState> {
    if status.key_rejected {
        return Some(EventState::Error);
    }
    match status.state {
        State::NotReady => None,
        State::Ready => Some(EventState::Ready),
        State::Stale => Some(EventState::Stale),
    }
}

fn state_event(status: &Status) -> Option<ProviderEvent> {
    status_state(status).map(|s| match s {
        EventState::Ready => ProviderEvent::Ready,
        EventState::Stale => ProviderEvent::Stale {
            message: status.reason.clone(),
        },
        EventState::Error => ProviderEvent::Error {
            message: status.reason.clone(),
        },
    })
}

impl ProviderEvents {
    /// The next event; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<ProviderEvent> {
        if let Some(event) = self.pending.take() {
            return Some(event);
        }
        loop {
            match self.rx.recv().await {
                Ok(ClientEvent::FlagsChanged(change)) => {
                    return Some(ProviderEvent::ConfigurationChanged {
                        flags_changed: change.keys.clone(),
                    });
                }
                Ok(ClientEvent::StatusChanged(status)) => {
                    // Only state transitions are events (not a new reason for the same state).
                    let state = status_state(&status);
                    if state != self.last {
                        self.last = state;
                        if let Some(event) = state_event(&status) {
                            return Some(event);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Events were skipped: report the state as it is now, if it moved, and
                    // that the configuration may have changed.
                    let status = self.client.status();
                    let state = status_state(&status);
                    if state != self.last {
                        self.last = state;
                        self.pending = state_event(&status);
                    }
                    return Some(ProviderEvent::ConfigurationChanged {
                        flags_changed: Vec::new(),
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn reason(ofrep: &str) -> EvaluationReason {
    match ofrep {
        "STATIC" => EvaluationReason::Static,
        "DEFAULT" => EvaluationReason::Default,
        "TARGETING_MATCH" => EvaluationReason::TargetingMatch,
        "SPLIT" => EvaluationReason::Split,
        "DISABLED" => EvaluationReason::Disabled,
        "ERROR" => EvaluationReason::Error,
        other => EvaluationReason::Other(other.to_owned()),
    }
}

fn error(code: ErrorCode, flag_key: &str) -> EvaluationError {
    let (code, message) = match code {
        ErrorCode::FlagNotFound => (
            EvaluationErrorCode::FlagNotFound,
            format!("flag '{flag_key}' not found"),
        ),
        ErrorCode::TargetingKeyMissing => (
            EvaluationErrorCode::TargetingKeyMissing,
            format!("flag '{flag_key}' buckets by an attribute the context lacks"),
        ),
        ErrorCode::TypeMismatch => (
            EvaluationErrorCode::TypeMismatch,
            format!("flag '{flag_key}' has another type"),
        ),
        ErrorCode::ClientNotReady => (
            EvaluationErrorCode::ProviderNotReady,
            "no flag data yet".to_owned(),
        ),
        ErrorCode::General => (
            EvaluationErrorCode::General("GENERAL".into()),
            "evaluation failed".to_owned(),
        ),
    };
    EvaluationError::builder()
        .code(code)
        .message(message)
        .build()
}

/// An OpenFeature context as a Vexil context: `targeting_key` becomes `targetingKey`;
/// date-times become epoch milliseconds (what `before`/`after` compare); structures given
/// as `serde_json::Value` or `StructValue` become JSON objects; other structures are left out.
pub fn to_context(context: &EvaluationContext) -> Context {
    let mut out = Context::new();
    for (name, value) in &context.custom_fields {
        if let Some(json) = field_json(value) {
            out.insert(name.clone(), json);
        }
    }
    if let Some(key) = &context.targeting_key {
        out.insert("targetingKey", Value::String(key.clone()));
    }
    out
}

fn field_json(value: &EvaluationContextFieldValue) -> Option<Value> {
    match value {
        EvaluationContextFieldValue::Bool(b) => Some(Value::Bool(*b)),
        EvaluationContextFieldValue::Int(i) => Some(Value::from(*i)),
        EvaluationContextFieldValue::Float(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number)
        }
        EvaluationContextFieldValue::String(s) => Some(Value::String(s.clone())),
        EvaluationContextFieldValue::DateTime(t) => {
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .ok()
                .map(Value::from)
        }
        EvaluationContextFieldValue::Struct(any) => any
            .downcast_ref::<Value>()
            .cloned()
            .or_else(|| any.downcast_ref::<StructValue>().map(struct_json)),
    }
}

fn struct_json(s: &StructValue) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), of_json(v)))
            .collect(),
    )
}

fn of_json(value: &OfValue) -> Value {
    match value {
        OfValue::Bool(b) => Value::Bool(*b),
        OfValue::Int(i) => Value::from(*i),
        OfValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        OfValue::String(s) => Value::String(s.clone()),
        OfValue::Array(a) => Value::Array(a.iter().map(of_json).collect()),
        OfValue::Struct(s) => struct_json(s),
    }
}
