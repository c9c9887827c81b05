//! `vexil-sdk`: the Rust SDK of Vexil. Flags are evaluated in process, in nanoseconds, by
//! the same engine as the server (`vexil-core`), against the environment's ruleset; a
//! background task keeps that ruleset current and the client keeps working when the server
//! is down.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use vexil_sdk::{Client, ContextBuilder};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // A server API key of one environment (`POST /api/v1/projects/{id}/api-keys`,
//! // "type": "server").
//! let client = Client::builder("http://127.0.0.1:8080", "vx_srv_…").build()?;
//! // Optional: evaluations before initialization serve the callers' defaults.
//! client.wait_for_initialization(Duration::from_secs(5)).await?;
//!
//! let user = ContextBuilder::new("user-42").set("email", "ann@acme.com").build();
//! if client.bool_value("new-checkout", &user, false) {
//!     // …
//! }
//! let detail = client.string_detail("banner-text", &user, "Welcome");
//! println!("{} ({:?}, variation {:?})", detail.value, detail.reason.kind, detail.variation);
//!
//! client.on_flag_change("new-checkout", |change| {
//!     println!("new-checkout changed (version {})", change.version);
//! });
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! - **Evaluation** loads the current compiled snapshot from an `arc-swap` cell (lock-free;
//!   an update never blocks a reader) and evaluates it: no network, no lock, no allocation
//!   for boolean, integer and float getters. It never panics: any error — flag not found,
//!   wrong type, no data yet — serves the caller's default, and the `*_detail` getters say
//!   why ([`ErrorCode`]).
//! - **Synchronisation**: the client fetches `GET /api/v1/sdk/config`, then follows
//!   `GET /api/v1/sdk/stream` (server-sent events), resuming with `Last-Event-ID` after a
//!   disconnection so that only missed changes are sent. Reconnection uses exponential
//!   backoff with jitter (1 s doubling to 30 s by default). When streaming is disabled, or
//!   keeps failing while the config endpoint works (e.g. a proxy that buffers responses),
//!   the client polls the config with `If-None-Match` instead.
//! - **Resilience**: whenever the server is unreachable, evaluations keep using the last
//!   known good data and [`Client::status`] says `Stale`, with the reason. A bootstrap
//!   ruleset file gives data before the first fetch, or for good in offline mode.
//! - **Notifications**: [`Client::on_flag_change`], [`Client::on_change`] and
//!   [`Client::on_status_change`] run callbacks off the evaluation path;
//!   [`Client::subscribe`] offers the same as a channel.
//!
//! # Features
//!
//! - `rustls`: `https://` server URLs (rustls with the operating system's trust store).
//! - `openfeature`: [`openfeature::VexilProvider`], a provider for the `open-feature` crate.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod builder;
mod client;
mod context;
mod detail;
mod events;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod report;
mod sse;
mod status;
mod store;
mod sync;

pub use builder::{BuildError, ClientBuilder};
pub use client::{Client, InitError};
pub use context::ContextBuilder;
pub use detail::{ErrorCode, EvaluationDetail, FlagValue, Reason, ReasonKind};
pub use events::{ClientEvent, FlagChange, ListenerId};
pub use status::{State, Status};
pub use vexil_core::{Context, Ruleset};
