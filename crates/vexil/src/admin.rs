//! `vexil admin`: operators' user commands, run against the database directly (the server
//! may be running or not): `create-user` and `reset-password`. A generated password is
//! printed once on standard output; `--password-stdin` reads one instead (for scripts).

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vexil_server::access::Role;
use vexil_server::store::{Store, organizations};
use vexil_server::{DatabaseConfig, bootstrap, credentials};

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

async fn open(db: &DatabaseConfig) -> anyhow::Result<std::sync::Arc<Store>> {
    let store = Store::connect(&db.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

pub(crate) async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser(c) => create_user(c).await,
        AdminCommand::ResetPassword(r) => reset_password(r).await,
    }
}

async fn create_user(c: CreateUser) -> anyhow::Result<()> {
    let email = normalize(&c.email)?;
    let role = Role::parse(&c.role)
        .ok_or_else(|| anyhow::anyhow!("--role must be owner, admin, editor or viewer"))?;
    let name = c
        .name
        .clone()
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    anyhow::ensure!(
        !name.trim().is_empty() && name.chars().count() <= 200,
        "--name must be 1 to 200 characters"
    );
    let (password, generated) = password(c.password_stdin)?;
    let hash = hash(&password).await?;
    let store = open(&c.database).await?;
    let mut tx = store.write().await?;
    let org = match &c.organization {
        Some(key) => Some(
            organizations::get_by_key(tx.conn(), key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organization with key '{key}'"))?,
        ),
        None => None,
    };
    let user = bootstrap::create_user(
        &mut tx,
        &email,
        &name,
        &hash,
        org.as_ref().map(|o| (o.id.as_str(), role)),
        Some("vexil admin create-user"),
    )
    .await?;
    tx.commit().await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "created user {} ({})", user.email, user.id)?;
    if let Some(org) = &org {
        writeln!(out, "member of '{}' as {}", org.key, role.as_str())?;
    }
    if generated {
        writeln!(out, "password (shown only now): {password}")?;
    }
    Ok(())
}

async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || credentials::hash_password(&password)).await?
}

async fn reset_password(r: ResetPassword) -> anyhow::Result<()> {
    let email = normalize(&r.email)?;
    let (password, generated) = password(r.password_stdin)?;
    let hash = hash(&password).await?;
    let store = open(&r.database).await?;
    let mut tx = store.write().await?;
    let user = bootstrap::reset_password(&mut tx, &email, &hash).await?;
    tx.commit().await?;
    store.close().await;
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
