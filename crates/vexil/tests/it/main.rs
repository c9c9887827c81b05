//! Tests of the `vexil` binary from outside: the operator's first login; the TypeScript
//! and Python SDKs' own test suites run against a `vexil serve` started from this binary;
//! webhooks verified by the `standardwebhooks` package and surviving a `kill -9`; flagd's
//! Python provider evaluating over gRPC.

mod cli;
mod first_login;
mod flagd;
mod js_sdk;
mod offline;
mod python_sdk;
mod server;
mod webhooks;
