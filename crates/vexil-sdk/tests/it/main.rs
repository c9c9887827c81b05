//! The SDK's integration tests, in one binary: conformance with the shared vectors, the API
//! as an application uses it, the resilience scenarios against a real server spawned in
//! process (on a temporary SQLite file), evaluation reports and tracked events, and the
//! OpenFeature provider.

mod api;
mod helpers;
mod insights;
mod openfeature;
mod proxy;
mod resilience;
mod vectors;
