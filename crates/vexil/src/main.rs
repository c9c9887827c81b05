//! The `vexil` binary: parses the command line and dispatches to a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod cli;
mod eval;

/// The server allocates per request (JSON, headers, contexts); mimalloc is markedly
/// faster than the system allocator there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vexil: a self-hosted feature flag service.
#[derive(Debug, Parser)]
#[command(name = "vexil", version, about, after_help = cli::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Vexil server (SQLite file ./vexil.db unless --database-url says otherwise).
    #[command(after_help = vexil_server::SECRETS_HELP)]
    Serve(Box<vexil_server::Config>),
    /// Apply database migrations and exit.
    Migrate(vexil_server::DatabaseConfig),
    /// Evaluate flags from a ruleset file, printing the same JSON as the evaluate API.
    Eval(eval::EvalArgs),
    /// Operators' user commands: create-user, reset-password.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Serve(config) => run_async(serve(*config)),
        Command::Migrate(db) => run_async(migrate(db)),
        Command::Admin(command) => run_async(admin::run(command)),
        Command::Client(command) => cli::run(command, <Cli as clap::CommandFactory>::command),
    }
}

fn run_async(task: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: vexil_server::Config) -> anyhow::Result<()> {
    vexil_server::init_logging(&config.log_format);
    let app = vexil_server::App::build(&config).await?;
    app.run(vexil_server::shutdown_signal()).await
}

async fn migrate(db: vexil_server::DatabaseConfig) -> anyhow::Result<()> {
    vexil_server::init_logging("pretty");
    vexil_server::operator::Operator::open(&db)
        .await?
        .close()
        .await;
    tracing::info!("migrations applied");
    Ok(())
}
