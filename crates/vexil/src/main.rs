//! The `vexil` binary: command-line entry point.
fn main() {}
