//! The `vexil` binary: parses the command line and dispatches to a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod eval;

/// Vexil: a self-hosted feature flag service.
#[derive(Debug, Parser)]
#[command(name = "vexil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate flags from a ruleset file, printing the same JSON as the evaluate API.
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => eval::run(&args),
    }
}
