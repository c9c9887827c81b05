//! The client commands: `vexil flags|templates|segments|keys|audit …`, `vexil promote`
//! (environment promotion) and `vexil export|apply` (flags as code) talk to a running
//! server's management API over HTTP, and `vexil completions` prints a shell completion
//! script.
//!
//! Every client command takes `--url` (`VEXIL_URL`), `--token` (`VEXIL_TOKEN`, sent as
//! `Authorization: Bearer` and never printed) and `--json`; the project-scoped ones take
//! `--project` (`VEXIL_PROJECT`). Failures print `error: <the API's message>` on stderr and
//! end with one of the [`EXIT_CODES_HELP`] codes.

use std::fmt;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

mod as_code;
mod audit;
mod client;
mod flags;
mod keys;
mod promote;
mod segments;
mod table;
mod templates;

/// Exit codes of the client commands, for `vexil --help` (and docs/cli.md).
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes of the client commands (flags, templates, promote, segments, keys, audit, export, apply):
  0  success
  1  refused by the server (invalid input, other 4xx), or an answer the CLI cannot read
  2  usage error (unknown option, missing argument)
  3  not found (404, or no project, environment, flag or segment with that key)
  4  authentication or authorization (401, 403): a missing, wrong or revoked token, or a role too low
  5  conflict or precondition (409, 412): a duplicate key, a resource still in use, approval required
  6  server or network unavailable (5xx, connection refused, timeout)

The client options (--url/VEXIL_URL, --token/VEXIL_TOKEN, --project/VEXIL_PROJECT, --json)
go after the command group, e.g. `vexil flags list --json`. See docs/cli.md.";

/// The help section of the options every client command takes.
const CLIENT_OPTIONS: &str = "Client options";

/// The client subcommands, flattened into the binary's own.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Feature flags of a project: list, get, create, toggle, kill, archive, restore.
    Flags(Scoped<flags::FlagsCommand>),
    /// Flag templates of a project: list, get, create, delete (`flags create --template`).
    Templates(Box<Scoped<templates::TemplatesCommand>>),
    /// Environment promotion: copy flag configurations from one environment to another.
    ///
    /// Every flag that is not archived, or the `--flag`s named; all or nothing, in one
    /// transaction, each change with a revision and an audit entry (`copied from <ENV>`).
    /// Prints which flags changed and which were already the same. A target environment
    /// that requires approval refuses copies (exit code 5).
    Promote(Box<InProject<promote::PromoteArgs>>),
    /// Segments of a project: list, get, create.
    Segments(Scoped<segments::SegmentsCommand>),
    /// API keys (SDK credentials) of a project: list, create, revoke.
    Keys(Scoped<keys::KeysCommand>),
    /// The audit trail: the newest entries, optionally following new ones.
    Audit(Unscoped<audit::AuditCommand>),
    /// Flags as code: write the project's segments and flags as YAML (or JSON).
    ///
    /// The document holds the segments, and the flags with their variations and each
    /// environment's configuration, keyed and ordered as the API answers; `vexil apply`
    /// takes it back.
    Export(InProject<as_code::ExportArgs>),
    /// Flags as code: apply a YAML or JSON document to the project, printing the plan.
    ///
    /// All or nothing, in one transaction; every change gets an audit entry with the
    /// comment. The plan lists each change (`+ create`, `~ update` with the changed
    /// fields, `- delete`) and ends with a summary line.
    Apply(InProject<as_code::ApplyArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Where the server is and who is asking: the options of every client command.
#[derive(Clone, Args)]
pub(crate) struct Connection {
    /// The Vexil server's base URL.
    #[arg(
        long,
        env = "VEXIL_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = client::parse_base_url,
        global = true,
        help_heading = CLIENT_OPTIONS
    )]
    pub(crate) url: reqwest_tls::Url,
    /// A personal, service or instance token, sent as `Authorization: Bearer` (never printed).
    #[arg(
        long,
        env = "VEXIL_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = CLIENT_OPTIONS
    )]
    pub(crate) token: Option<String>,
    /// Print the API's JSON (pretty, one document per command) instead of tables.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS)]
    pub(crate) json: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("json", &self.json)
            .finish()
    }
}

/// A command group working inside one project.
#[derive(Debug, Args)]
pub(crate) struct Scoped<C: Subcommand> {
    #[command(flatten)]
    connection: Connection,
    /// The project's key (or id).
    #[arg(
        long,
        env = "VEXIL_PROJECT",
        default_value = "default",
        global = true,
        value_name = "KEY",
        help_heading = CLIENT_OPTIONS
    )]
    project: String,
    #[command(subcommand)]
    command: C,
}

/// A single command (not a group) working inside one project.
#[derive(Debug, Args)]
pub(crate) struct InProject<A: Args> {
    #[command(flatten)]
    connection: Connection,
    /// The project's key (or id).
    #[arg(
        long,
        env = "VEXIL_PROJECT",
        default_value = "default",
        value_name = "KEY",
        help_heading = CLIENT_OPTIONS
    )]
    project: String,
    #[command(flatten)]
    args: A,
}

/// A command group that is not about one project.
#[derive(Debug, Args)]
pub(crate) struct Unscoped<C: Subcommand> {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: C,
}

/// The value of a flag type option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FlagType {
    Boolean,
    String,
    Number,
    Json,
}

impl ClientCommand {
    /// Where the command connects (`None`: completions, which connect nowhere).
    fn connection(&self) -> Option<&Connection> {
        Some(match self {
            ClientCommand::Flags(s) => &s.connection,
            ClientCommand::Templates(s) => &s.connection,
            ClientCommand::Promote(s) => &s.connection,
            ClientCommand::Segments(s) => &s.connection,
            ClientCommand::Keys(s) => &s.connection,
            ClientCommand::Audit(u) => &u.connection,
            ClientCommand::Export(s) => &s.connection,
            ClientCommand::Apply(s) => &s.connection,
            ClientCommand::Completions { .. } => return None,
        })
    }
}

/// Runs a client command; `root` builds the whole command line (for completions).
pub(crate) fn run(command: ClientCommand, root: fn() -> clap::Command) -> ExitCode {
    if let ClientCommand::Completions { shell } = command {
        let mut out = std::io::stdout().lock();
        clap_complete::generate(shell, &mut root(), "vexil", &mut out);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(client::EXIT_REFUSED);
        }
    };
    let outcome = runtime.block_on(async {
        let Some(connection) = command.connection() else {
            return Ok(());
        };
        let c = client::Client::new(connection)?;
        match command {
            ClientCommand::Flags(s) => flags::run(&c, &s.project, s.command).await,
            ClientCommand::Templates(s) => templates::run(&c, &s.project, s.command).await,
            ClientCommand::Promote(s) => promote::run(&c, &s.project, s.args).await,
            ClientCommand::Segments(s) => segments::run(&c, &s.project, s.command).await,
            ClientCommand::Keys(s) => keys::run(&c, &s.project, s.command).await,
            ClientCommand::Audit(u) => audit::run(&c, u.command).await,
            ClientCommand::Export(s) => as_code::export(&c, &s.project, s.args).await,
            ClientCommand::Apply(s) => as_code::apply(&c, &s.project, s.args).await,
            ClientCommand::Completions { .. } => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.exit_code())
        }
    }
}
