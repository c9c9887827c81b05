//! `vexil keys …`: a project's API keys (the credentials of SDKs and applications): list
//! them, create one (its secret is printed this once), revoke one by id.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::{Client, Failure, Project, pick_environment};
use super::table::{Table, details, emit, emit_json, text, time};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List the project's API keys (never their secrets).
    List,
    /// Create an API key for one environment; its secret is printed only this once.
    Create(CreateArgs),
    /// Revoke an API key at once (by its id, from `vexil keys list`).
    Revoke {
        /// The key's id.
        id: String,
        /// A comment for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeyType {
    /// Server SDKs: evaluate locally, read rules.
    Server,
    /// Browsers: `client_side` flags' values only.
    Client,
    /// Mobile apps: `client_side` flags' values only.
    Mobile,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// What the key is for, e.g. "checkout service".
    #[arg(long)]
    name: String,
    /// The kind of key.
    #[arg(long = "type", value_enum)]
    kind: KeyType,
    /// The environment (key) the key reads.
    #[arg(long, value_name = "KEY")]
    environment: String,
    /// When the key stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z); default never.
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) async fn run(c: &Client, project: &str, command: KeysCommand) -> Result<(), Failure> {
    match command {
        KeysCommand::List => list(c, &c.project(project).await?).await,
        KeysCommand::Create(args) => create(c, &c.project(project).await?, args).await,
        KeysCommand::Revoke { id, comment } => revoke(c, &id, comment).await,
    }
}

async fn list(c: &Client, p: &Project) -> Result<(), Failure> {
    let keys = c.list_all(&["projects", &p.id, "api-keys"], &[]).await?;
    if c.json {
        let total = keys.len();
        return emit_json(&json!({"items": keys, "total": total}));
    }
    if keys.is_empty() {
        return emit(&format!("no API keys in project '{}'\n", p.key));
    }
    let environments: HashMap<String, String> = c
        .environments(&p.id)
        .await?
        .iter()
        .map(|e| (text(e, "id"), text(e, "key")))
        .collect();
    let now = now_utc();
    let mut table = Table::new(&[
        "id",
        "name",
        "type",
        "environment",
        "prefix",
        "status",
        "expires",
        "last used",
    ]);
    for key in &keys {
        let env = text(key, "environment_id");
        table.row(vec![
            text(key, "id"),
            text(key, "name"),
            text(key, "type"),
            environments.get(&env).cloned().unwrap_or(env),
            text(key, "prefix"),
            status(key, &now).to_owned(),
            time(key, "expires_at", "never"),
            time(key, "last_used_at", "never"),
        ]);
    }
    emit(&table.render())
}

/// `revoked`, `expired` or `active`; `now` is `YYYY-MM-DDTHH:MM:SS` in UTC.
fn status(key: &Value, now: &str) -> &'static str {
    if !key.get("revoked_at").is_none_or(Value::is_null) {
        return "revoked";
    }
    match key.get("expires_at").and_then(Value::as_str) {
        // The API's times are UTC (`…Z`), so their first 19 characters compare as text.
        Some(at) if at.get(..19).is_some_and(|at| at <= now) => "expired",
        _ => "active",
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS`.
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn create(c: &Client, p: &Project, args: CreateArgs) -> Result<(), Failure> {
    let environments = c.environments(&p.id).await?;
    let env = pick_environment(&environments, &args.environment, &p.key)?;
    let kind = match args.kind {
        KeyType::Server => "server",
        KeyType::Client => "client",
        KeyType::Mobile => "mobile",
    };
    let mut body = json!({"name": args.name, "type": kind, "environment_id": text(env, "id")});
    if let Some(at) = args.expires_at {
        body["expires_at"] = Value::String(at);
    }
    if let Some(comment) = args.comment {
        body["comment"] = Value::String(comment);
    }
    let key = c.post(&["projects", &p.id, "api-keys"], &body).await?;
    let warning = "warning: the key is shown only this once: store it now";
    if c.json {
        emit_json(&key)?;
        eprintln!("{warning}");
        return Ok(());
    }
    emit(&details(&[
        ("id", text(&key, "id")),
        ("name", text(&key, "name")),
        ("type", text(&key, "type")),
        ("project", p.key.clone()),
        ("environment", text(env, "key")),
        ("expires", time(&key, "expires_at", "never")),
        ("key", text(&key, "key")),
    ]))?;
    eprintln!("{warning}");
    Ok(())
}

async fn revoke(c: &Client, id: &str, comment: Option<String>) -> Result<(), Failure> {
    let body = match comment {
        Some(comment) => json!({"comment": comment}),
        None => json!({}),
    };
    let key = c.patch(&["api-keys", id, "revoke"], &body).await?;
    if c.json {
        return emit_json(&key);
    }
    emit(&format!(
        "revoked API key '{}' ({}…, id {})\n",
        text(&key, "name"),
        text(&key, "prefix"),
        text(&key, "id"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(utc(1_796_411_217), "2026-12-04T19:06:57");
    }

    #[test]
    fn statuses() {
        let now = "2026-12-04T18:00:00";
        assert_eq!(
            status(&json!({"revoked_at": "2026-01-01T00:00:00Z"}), now),
            "revoked"
        );
        assert_eq!(
            status(
                &json!({"revoked_at": null, "expires_at": "2026-12-04T17:59:59.000Z"}),
                now
            ),
            "expired"
        );
        assert_eq!(
            status(&json!({"revoked_at": null, "expires_at": null}), now),
            "active"
        );
    }
}
