//! `vexil admin`: operators' user commands, run against the database directly (the server
//! may be running or not): `create-user` and `reset-password`. A generated password is
//! printed once on standard output; `--password-stdin` reads one instead (for scripts).

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vexil_server::DatabaseConfig;
use vexil_server::credentials;
use vexil_server::operator::Operator;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a user, optionally as a member of an organization.
    CreateUser(CreateUser),
    /// Set a new password for a user; ends their sessions and revokes their personal tokens.
    ResetPassword(ResetPassword),
}

#[derive(Debug, Args)]
pub(crate) struct CreateUser {
    #[command(flatten)]
    database: DatabaseConfig,
    /// The user's email address (their login).
    #[arg(long)]
    email: String,
    /// Display name (default: the email's local part).
    #[arg(long)]
    name: Option<String>,
    /// Key of an organization to add the user to (e.g. `default`).
    #[arg(long)]
    organization: Option<String>,
    /// Role in that organization: owner, admin, editor or viewer.
    #[arg(long, default_value = "viewer", requires = "organization")]
    role: String,
    /// Read the password from the first line of standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ResetPassword {
    #[command(flatten)]
    database: DatabaseConfig,
    /// The user's email address.
    #[arg(long)]
    email: String,
    /// Read the new password from the first line of standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

/// The password to set: from stdin (checked), or generated (and so to be printed).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((credentials::random_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    credentials::check_password_strength(&password)
        .map_err(|m| anyhow::anyhow!("the password {m}"))?;
    Ok((password, false))
}

fn normalize(email: &str) -> anyhow::Result<String> {
    credentials::normalize_email(email).map_err(|m| anyhow::anyhow!("--email {m}"))
}

pub(crate) async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser(c) => create_user(c).await,
        AdminCommand::ResetPassword(r) => reset_password(r).await,
    }
}

async fn create_user(c: CreateUser) -> anyhow::Result<()> {
    let email = normalize(&c.email)?;
    let name = c
        .name
        .clone()
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    anyhow::ensure!(
        !name.trim().is_empty() && name.chars().count() <= 200,
        "--name must be 1 to 200 characters"
    );
    let (password, generated) = password(c.password_stdin)?;
    let operator = Operator::open(&c.database).await?;
    let membership = c.organization.as_deref().map(|org| (org, c.role.as_str()));
    let user = operator
        .create_user(&email, &name, &password, membership)
        .await;
    operator.close().await;
    let user = user?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "created user {} ({})", user.email, user.id)?;
    if let Some(org) = &c.organization {
        writeln!(out, "member of '{org}' as {}", c.role)?;
    }
    if generated {
        writeln!(out, "password (shown only now): {password}")?;
    }
    Ok(())
}

async fn reset_password(r: ResetPassword) -> anyhow::Result<()> {
    let email = normalize(&r.email)?;
    let (password, generated) = password(r.password_stdin)?;
    let operator = Operator::open(&r.database).await?;
    let user = operator.reset_password(&email, &password).await;
    operator.close().await;
    let user = user?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "password reset for {}; their sessions are ended and personal tokens revoked",
        user.email
    )?;
    if generated {
        writeln!(out, "new password (shown only now): {password}")?;
    }
    Ok(())
}
