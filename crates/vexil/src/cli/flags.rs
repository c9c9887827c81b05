//! `vexil flags …`: list a project's flags with their state per environment, show one with
//! its configuration in each environment, create, toggle, kill (the kill switch), archive
//! and restore — each found by key in the project.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::FlagType;
use super::client::{Client, Failure, Project, pick_environment};
use super::table::{Table, count, details, display, emit, emit_json, list, text, time, yes_no};

#[derive(Debug, Subcommand)]
pub(crate) enum FlagsCommand {
    /// List the project's flags: key, type, on/off in each environment, tags, archived.
    List(ListArgs),
    /// Show a flag and a summary of its configuration in each environment.
    Get {
        /// The flag's key.
        key: String,
    },
    /// Create a flag (boolean unless --type says otherwise), off in every environment, or
    /// made from a template (`--template KEY`: its shape and starting configurations).
    Create(CreateArgs),
    /// Turn a flag on or off in one environment (without --on or --off: flip it).
    Toggle(ToggleArgs),
    /// The kill switch: turn a flag off at once in every environment (or the one given).
    Kill {
        /// The flag's key.
        key: String,
        /// Why (recorded in the audit trail and the configurations' revisions).
        #[arg(long)]
        reason: String,
        /// Only this environment (key).
        #[arg(long, value_name = "KEY")]
        environment: Option<String>,
    },
    /// Archive a flag: SDKs no longer see it; it can be restored.
    Archive(ChangeArgs),
    /// Restore an archived flag.
    Restore(ChangeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Archived flags only.
    #[arg(long, conflicts_with = "all")]
    archived: bool,
    /// Archived and non-archived flags.
    #[arg(long)]
    all: bool,
    /// Only flags with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only flags whose key, name or description contains this text.
    #[arg(long, short = 'q', value_name = "TEXT")]
    query: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The flag's key: letters, digits, `_`, `.` and `-`, starting with a letter or digit.
    key: String,
    /// Display name (default: the key).
    #[arg(long)]
    name: Option<String>,
    /// The type of the values it serves (default: boolean, or the template's type).
    #[arg(long = "type", value_enum)]
    kind: Option<FlagType>,
    /// What the flag is for.
    #[arg(long)]
    description: Option<String>,
    /// A tag (repeat for several, or separate with commas).
    #[arg(long = "tag", value_delimiter = ',', value_name = "TAG")]
    tags: Vec<String>,
    /// Marks a flag meant to be removed once rolled out (it becomes stale sooner).
    #[arg(long)]
    temporary: bool,
    /// Visible to client and mobile keys (browsers, apps).
    #[arg(long)]
    client_side: bool,
    /// A variation `KEY=VALUE` (repeat; needed for string, number and json flags). The value
    /// is taken as text for string flags and as JSON otherwise.
    #[arg(long = "variation", value_name = "KEY=VALUE", value_parser = parse_variation)]
    variations: Vec<(String, String)>,
    /// Make the flag from this template of the project (`vexil templates list`): its type,
    /// variations, tags, temporary, client side, description and its starting
    /// configuration in each environment it names. The options given here win.
    #[arg(long, value_name = "TEMPLATE_KEY")]
    template: Option<String>,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ToggleArgs {
    /// The flag's key.
    key: String,
    /// The environment (key), e.g. production.
    #[arg(long, value_name = "KEY")]
    environment: String,
    /// Turn it on.
    #[arg(long, conflicts_with = "off")]
    on: bool,
    /// Turn it off.
    #[arg(long)]
    off: bool,
    /// A comment for the audit trail and the configuration's revision.
    #[arg(long)]
    comment: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ChangeArgs {
    /// The flag's key.
    key: String,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) fn parse_variation(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

pub(crate) async fn run(c: &Client, project: &str, command: FlagsCommand) -> Result<(), Failure> {
    let p = c.project(project).await?;
    match command {
        FlagsCommand::List(args) => list_flags(c, &p, &args).await,
        FlagsCommand::Get { key } => get(c, &p, &key).await,
        FlagsCommand::Create(args) => create(c, &p, args).await,
        FlagsCommand::Toggle(args) => toggle(c, &p, args).await,
        FlagsCommand::Kill {
            key,
            reason,
            environment,
        } => kill(c, &p, &key, reason, environment.as_deref()).await,
        FlagsCommand::Archive(args) => archive(c, &p, args, true).await,
        FlagsCommand::Restore(args) => archive(c, &p, args, false).await,
    }
}

/// The flag with this key, archived or not.
async fn find(c: &Client, p: &Project, key: &str) -> Result<Value, Failure> {
    for archived in ["false", "true"] {
        let query = [("q", key.to_owned()), ("archived", archived.to_owned())];
        let flags = c
            .list_all(&["projects", &p.id, "feature-flags"], &query)
            .await?;
        if let Some(flag) = flags.into_iter().find(|f| text(f, "key") == key) {
            return Ok(flag);
        }
    }
    Err(Failure::NotFound(format!(
        "no flag '{}' in project '{}'",
        super::table::clean(key),
        p.key
    )))
}

async fn list_flags(c: &Client, p: &Project, args: &ListArgs) -> Result<(), Failure> {
    let environments = c.environments(&p.id).await?;
    let mut query = Vec::new();
    if let Some(tag) = &args.tag {
        query.push(("tag", tag.clone()));
    }
    if let Some(q) = &args.query {
        query.push(("q", q.clone()));
    }
    let mut flags = Vec::new();
    for archived in [false, true] {
        if args.all || args.archived == archived {
            let mut q = query.clone();
            q.push(("archived", archived.to_string()));
            flags.extend(
                c.list_all(&["projects", &p.id, "feature-flags"], &q)
                    .await?,
            );
        }
    }
    flags.sort_by_key(|f| text(f, "key"));
    // Each environment's configurations: flag id → enabled.
    let mut states: Vec<(String, HashMap<String, bool>)> = Vec::new();
    for env in &environments {
        let configs = c
            .list_all(&["environments", &text(env, "id"), "flag-configs"], &[])
            .await?;
        let enabled = configs
            .iter()
            .map(|cfg| {
                let on = cfg.get("enabled").and_then(Value::as_bool).unwrap_or(false);
                (text(cfg, "flag_id"), on)
            })
            .collect();
        states.push((text(env, "key"), enabled));
    }
    if c.json {
        let items: Vec<Value> = flags
            .into_iter()
            .map(|mut flag| {
                let id = text(&flag, "id");
                let per_env: Map<String, Value> = states
                    .iter()
                    .filter_map(|(env, on)| on.get(&id).map(|b| (env.clone(), Value::Bool(*b))))
                    .collect();
                if let Some(obj) = flag.as_object_mut() {
                    obj.insert("environments".to_owned(), Value::Object(per_env));
                }
                flag
            })
            .collect();
        let total = items.len();
        return emit_json(&json!({"items": items, "total": total}));
    }
    if flags.is_empty() {
        let which = if args.archived {
            "archived flags"
        } else {
            "flags"
        };
        return emit(&format!("no {which} in project '{}'\n", p.key));
    }
    let mut headers = vec!["key".to_owned(), "type".to_owned()];
    headers.extend(states.iter().map(|(env, _)| env.clone()));
    headers.extend(["tags".to_owned(), "archived".to_owned()]);
    let mut table = Table::new(&headers);
    for flag in &flags {
        let id = text(flag, "id");
        let mut row = vec![text(flag, "key"), text(flag, "type")];
        row.extend(states.iter().map(|(_, on)| match on.get(&id) {
            Some(true) => "on".to_owned(),
            Some(false) => "off".to_owned(),
            None => "-".to_owned(),
        }));
        row.extend([list(flag, "tags"), yes_no(flag, "archived")]);
        table.row(row);
    }
    emit(&table.render())
}

async fn get(c: &Client, p: &Project, key: &str) -> Result<(), Failure> {
    let mut flag = find(c, p, key).await?;
    let id = text(&flag, "id");
    let environments = c.environments(&p.id).await?;
    let mut configs = Vec::new();
    for env in &environments {
        let config = c
            .get(
                &["flags", &id, "environments", &text(env, "id"), "config"],
                &[],
            )
            .await?;
        configs.push((text(env, "key"), config));
    }
    if c.json {
        let by_env: Map<String, Value> = configs.into_iter().collect();
        if let Some(obj) = flag.as_object_mut() {
            obj.insert("configurations".to_owned(), Value::Object(by_env));
        }
        return emit_json(&flag);
    }
    let variations = flag
        .get("variations")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| format!("{}={}", text(v, "key"), v["value"]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let lifecycle = flag.get("lifecycle").cloned().unwrap_or(Value::Null);
    let stale = if lifecycle.get("stale").and_then(Value::as_bool) == Some(true) {
        format!("yes ({})", list(&lifecycle, "reasons"))
    } else {
        "no".to_owned()
    };
    let mut out = details(&[
        ("key", text(&flag, "key")),
        ("name", text(&flag, "name")),
        ("id", id),
        ("project", p.key.clone()),
        ("type", text(&flag, "type")),
        ("description", text(&flag, "description")),
        ("variations", variations),
        ("tags", list(&flag, "tags")),
        ("client side", yes_no(&flag, "client_side")),
        ("temporary", yes_no(&flag, "temporary")),
        ("archived", yes_no(&flag, "archived")),
        ("version", text(&flag, "version")),
        ("created", time(&flag, "created_at", "-")),
        ("updated", time(&flag, "updated_at", "-")),
        (
            "last evaluated",
            time(&lifecycle, "last_evaluated_at", "never"),
        ),
        ("stale", stale),
    ]);
    out.push('\n');
    let mut table = Table::new(&[&CONFIG_COLUMNS[..], &["version", "updated"]].concat());
    for (env, config) in &configs {
        let mut cells = config_cells(env, config);
        cells.push(text(config, "version"));
        cells.push(time(config, "updated_at", "-"));
        table.row(cells);
    }
    out.push_str(&table.render());
    emit(&out)
}

/// What a fallthrough serves: `on`, or a rollout `on 25%, off 75%`.
/// The columns every table of configurations by environment starts with.
pub(crate) const CONFIG_COLUMNS: [&str; 7] = [
    "environment",
    "state",
    "serves",
    "off variation",
    "targets",
    "rules",
    "prerequisites",
];

/// The [`CONFIG_COLUMNS`] cells of `env`'s configuration.
pub(crate) fn config_cells(env: &str, config: &Value) -> Vec<String> {
    let on = config.get("enabled").and_then(Value::as_bool) == Some(true);
    vec![
        env.to_owned(),
        if on { "on" } else { "off" }.to_owned(),
        serves(config.get("fallthrough").unwrap_or(&Value::Null)),
        text(config, "off_variation"),
        count(config, "targets").to_string(),
        count(config, "rules").to_string(),
        count(config, "prerequisites").to_string(),
    ]
}

pub(crate) fn serves(fallthrough: &Value) -> String {
    if let Some(variation) = fallthrough.get("variation").and_then(Value::as_str) {
        return variation.to_owned();
    }
    let Some(parts) = fallthrough
        .get("rollout")
        .and_then(|r| r.get("variations"))
        .and_then(Value::as_array)
    else {
        return display(fallthrough);
    };
    parts
        .iter()
        .map(|part| {
            let weight = part.get("weight").and_then(Value::as_u64).unwrap_or(0);
            format!("{} {}", text(part, "variation"), percent(weight))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A weight in thousandths of a percent, as a percentage: 25000 → `25%`, 1500 → `1.5%`.
fn percent(weight: u64) -> String {
    let whole = weight / 1000;
    let frac = weight % 1000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{}%", digits.trim_end_matches('0'))
    }
}

/// The API's name of a flag type.
pub(crate) fn type_name(kind: FlagType) -> &'static str {
    match kind {
        FlagType::Boolean => "boolean",
        FlagType::String => "string",
        FlagType::Number => "number",
        FlagType::Json => "json",
    }
}

/// `--variation KEY=VALUE` options as the API's variations: the value is text for a
/// string flag (`kind`), JSON otherwise.
pub(crate) fn variations_of(
    kind: &str,
    variations: Vec<(String, String)>,
) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for (key, raw) in variations {
        let value = if kind == "string" {
            Value::String(raw)
        } else {
            serde_json::from_str(&raw).map_err(|e| {
                Failure::Usage(format!(
                    "--variation {key}={raw}: the value of a {kind} flag's variation must be JSON ({e})"
                ))
            })?
        };
        out.push(json!({"key": key, "value": value}));
    }
    Ok(out)
}

async fn create(c: &Client, p: &Project, args: CreateArgs) -> Result<(), Failure> {
    let mut body = json!({"key": args.key});
    // The type the variations' values are read as: the option's, else the template's.
    let mut kind = args.kind.map_or("boolean", type_name).to_owned();
    if let Some(kind) = args.kind {
        body["type"] = Value::String(type_name(kind).to_owned());
    }
    if let Some(template) = &args.template {
        body["template"] = Value::String(template.clone());
        if args.kind.is_none() && !args.variations.is_empty() {
            let templates = c
                .list_all(&["projects", &p.id, "flag-templates"], &[])
                .await?;
            if let Some(t) = templates.iter().find(|t| text(t, "key") == *template) {
                kind = text(t, "type");
            }
        }
    }
    if let Some(name) = args.name {
        body["name"] = Value::String(name);
    }
    if let Some(description) = args.description {
        body["description"] = Value::String(description);
    }
    if !args.tags.is_empty() {
        body["tags"] = json!(args.tags);
    }
    if args.temporary {
        body["temporary"] = Value::Bool(true);
    }
    if args.client_side {
        body["client_side"] = Value::Bool(true);
    }
    if !args.variations.is_empty() {
        body["variations"] = Value::Array(variations_of(&kind, args.variations)?);
    }
    if let Some(comment) = args.comment {
        body["comment"] = Value::String(comment);
    }
    let flag = c.post(&["projects", &p.id, "feature-flags"], &body).await?;
    if c.json {
        return emit_json(&flag);
    }
    let how = match &args.template {
        Some(template) => format!(
            "from template '{}', configured as the template says",
            super::table::clean(template)
        ),
        None => "off in every environment".to_owned(),
    };
    emit(&format!(
        "created flag '{}' ({}) in project '{}', {how} (id {})\n",
        text(&flag, "key"),
        text(&flag, "type"),
        p.key,
        text(&flag, "id"),
    ))
}

async fn toggle(c: &Client, p: &Project, args: ToggleArgs) -> Result<(), Failure> {
    let environments = c.environments(&p.id).await?;
    let env = pick_environment(&environments, &args.environment, &p.key)?;
    let flag = find(c, p, &args.key).await?;
    let mut body = json!({});
    if args.on || args.off {
        body["enabled"] = Value::Bool(args.on);
    }
    if let Some(comment) = args.comment {
        body["comment"] = Value::String(comment);
    }
    let config = c
        .patch(
            &[
                "flags",
                &text(&flag, "id"),
                "environments",
                &text(env, "id"),
                "config",
                "toggle",
            ],
            &body,
        )
        .await?;
    if c.json {
        return emit_json(&config);
    }
    let on = config.get("enabled").and_then(Value::as_bool) == Some(true);
    emit(&format!(
        "flag '{}' is {} in {} (configuration version {})\n",
        text(&flag, "key"),
        if on { "on" } else { "off" },
        text(env, "key"),
        text(&config, "version"),
    ))
}

async fn kill(
    c: &Client,
    p: &Project,
    key: &str,
    reason: String,
    environment: Option<&str>,
) -> Result<(), Failure> {
    let mut body = json!({"reason": reason});
    let mut env_key = None;
    if let Some(wanted) = environment {
        let environments = c.environments(&p.id).await?;
        let env = pick_environment(&environments, wanted, &p.key)?;
        body["environment_id"] = Value::String(text(env, "id"));
        env_key = Some(text(env, "key"));
    }
    let flag = find(c, p, key).await?;
    let result = c
        .post(&["feature-flags", &text(&flag, "id"), "kill-switch"], &body)
        .await?;
    if c.json {
        return emit_json(&result);
    }
    let changed = result.get("changed").and_then(Value::as_u64).unwrap_or(0);
    let where_ = env_key.unwrap_or_else(|| "every environment".to_owned());
    let what = if changed == 0 {
        "it was already off: nothing changed".to_owned()
    } else {
        format!("{changed} configuration(s) turned off")
    };
    emit(&format!(
        "flag '{}' is off in {where_} ({what})\n",
        text(&flag, "key")
    ))
}

async fn archive(c: &Client, p: &Project, args: ChangeArgs, archive: bool) -> Result<(), Failure> {
    let flag = find(c, p, &args.key).await?;
    let body = match args.comment {
        Some(comment) => json!({"comment": comment}),
        None => json!({}),
    };
    let action = if archive { "archive" } else { "restore" };
    let flag = c
        .patch(&["feature-flags", &text(&flag, "id"), action], &body)
        .await?;
    if c.json {
        return emit_json(&flag);
    }
    let done = if archive { "archived" } else { "restored" };
    emit(&format!(
        "{done} flag '{}' in project '{}'\n",
        text(&flag, "key"),
        p.key
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallthroughs_read_as_variations_and_percentages() {
        assert_eq!(serves(&json!({"variation": "on"})), "on");
        let rollout = json!({"rollout": {"variations": [
            {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}});
        assert_eq!(serves(&rollout), "on 25%, off 75%");
        assert_eq!(percent(1500), "1.5%");
        assert_eq!(percent(125), "0.125%");
    }
}
