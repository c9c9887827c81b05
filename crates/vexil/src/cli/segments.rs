//! `vexil segments …`: list a project's segments, show one, create one from lists of
//! targeting keys (rules are left to the console and the API).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, Failure, Project};
use super::table::{Table, clean, count, details, emit, emit_json, list, text, time};

#[derive(Debug, Subcommand)]
pub(crate) enum SegmentsCommand {
    /// List the project's segments.
    List,
    /// Show a segment: its included and excluded keys and its rules.
    Get {
        /// The segment's key.
        key: String,
    },
    /// Create a segment of targeting keys.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The segment's key: letters, digits, `_`, `.` and `-`, starting with a letter or digit.
    key: String,
    /// Display name (default: the key).
    #[arg(long)]
    name: Option<String>,
    /// What the segment is.
    #[arg(long)]
    description: Option<String>,
    /// Targeting keys always in the segment (comma-separated, or repeat the option).
    #[arg(long = "include", value_delimiter = ',', value_name = "KEY,...")]
    included: Vec<String>,
    /// Targeting keys never in the segment (comma-separated, or repeat the option).
    #[arg(long = "exclude", value_delimiter = ',', value_name = "KEY,...")]
    excluded: Vec<String>,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) async fn run(
    c: &Client,
    project: &str,
    command: SegmentsCommand,
) -> Result<(), Failure> {
    let p = c.project(project).await?;
    match command {
        SegmentsCommand::List => list_segments(c, &p).await,
        SegmentsCommand::Get { key } => get(c, &p, &key).await,
        SegmentsCommand::Create(args) => create(c, &p, args).await,
    }
}

async fn list_segments(c: &Client, p: &Project) -> Result<(), Failure> {
    let segments = c.list_all(&["projects", &p.id, "segments"], &[]).await?;
    if c.json {
        let total = segments.len();
        return emit_json(&json!({"items": segments, "total": total}));
    }
    if segments.is_empty() {
        return emit(&format!("no segments in project '{}'\n", p.key));
    }
    let mut table = Table::new(&[
        "key", "name", "included", "excluded", "rules", "version", "updated",
    ]);
    for s in &segments {
        table.row(vec![
            text(s, "key"),
            text(s, "name"),
            count(s, "included").to_string(),
            count(s, "excluded").to_string(),
            count(s, "rules").to_string(),
            text(s, "version"),
            time(s, "updated_at", "-"),
        ]);
    }
    emit(&table.render())
}

async fn get(c: &Client, p: &Project, key: &str) -> Result<(), Failure> {
    let segments = c.list_all(&["projects", &p.id, "segments"], &[]).await?;
    let Some(segment) = segments.into_iter().find(|s| text(s, "key") == key) else {
        return Err(Failure::NotFound(format!(
            "no segment '{}' in project '{}'",
            clean(key),
            p.key
        )));
    };
    if c.json {
        return emit_json(&segment);
    }
    let rules: Vec<String> = segment
        .get("rules")
        .and_then(Value::as_array)
        .map(|rules| rules.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    let mut pairs = vec![
        ("key", text(&segment, "key")),
        ("name", text(&segment, "name")),
        ("id", text(&segment, "id")),
        ("project", p.key.clone()),
        ("description", text(&segment, "description")),
        ("included", list(&segment, "included")),
        ("excluded", list(&segment, "excluded")),
        ("rules", rules.len().to_string()),
        ("version", text(&segment, "version")),
        ("created", time(&segment, "created_at", "-")),
        ("updated", time(&segment, "updated_at", "-")),
    ];
    for rule in rules {
        pairs.push(("  rule", rule));
    }
    emit(&details(&pairs))
}

async fn create(c: &Client, p: &Project, args: CreateArgs) -> Result<(), Failure> {
    let mut body = json!({"key": args.key});
    if let Some(name) = args.name {
        body["name"] = Value::String(name);
    }
    if let Some(description) = args.description {
        body["description"] = Value::String(description);
    }
    if !args.included.is_empty() {
        body["included"] = json!(args.included);
    }
    if !args.excluded.is_empty() {
        body["excluded"] = json!(args.excluded);
    }
    if let Some(comment) = args.comment {
        body["comment"] = Value::String(comment);
    }
    let segment = c.post(&["projects", &p.id, "segments"], &body).await?;
    if c.json {
        return emit_json(&segment);
    }
    emit(&format!(
        "created segment '{}' in project '{}' ({} included, {} excluded; id {})\n",
        text(&segment, "key"),
        p.key,
        count(&segment, "included"),
        count(&segment, "excluded"),
        text(&segment, "id"),
    ))
}
