//! The server's integration tests: each spawns the real server on 127.0.0.1:0 with a fresh
//! database and drives it over HTTP, once on SQLite and once on PostgreSQL.
//!
//! PostgreSQL runs need `VEXIL_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test creates and drops its own database. Without the variable those runs skip with
//! a message, unless `VEXIL_REQUIRE_POSTGRES=1`, which makes a skip a failure (CI sets it).

mod access;
mod api_keys;
mod as_code;
mod audit_logs;
mod client_side;
mod cluster;
mod console;
mod evaluate;
mod flag_configs;
mod flags;
mod grpc;
mod hardening;
mod helpers;
mod insights;
mod management;
mod ofrep;
mod oidc;
mod openapi;
mod openfeature;
mod ops;
mod promotion;
mod release;
mod rollouts;
mod segments;
mod simple;
mod stream;
mod templates;
mod webdriver;
mod webhooks;
mod ws;

pub(crate) use helpers::*;
