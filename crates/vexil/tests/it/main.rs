//! Tests of the `vexil` binary from outside: the operator's first login, and the TypeScript
//! and Python SDKs' own test suites run against a `vexil serve` started from this binary.

mod first_login;
mod js_sdk;
mod python_sdk;
