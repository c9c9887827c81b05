//! `vexil templates …`: a project's flag templates — predefined flag shapes (type,
//! variations, tags, temporary, client side) with a starting configuration per environment
//! — listed, shown, created (from options, `--on ENV` for the simple starting
//! configuration, or a YAML/JSON body with `--from-file`) and deleted, each found by key.
//! `vexil flags create KEY --template T` makes a flag from one.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::FlagType;
use super::as_code::{read_source, shown};
use super::client::{Client, Failure, Project, pick_environment};
use super::flags::{CONFIG_COLUMNS, config_cells, parse_variation, type_name, variations_of};
use super::table::{Table, clean, details, emit, emit_json, list, text, time, yes_no};

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesCommand {
    /// List the project's templates: key, name, type, tags, temporary, environments configured.
    List,
    /// Show a template and its starting configuration in each environment it configures.
    Get {
        /// The template's key.
        key: String,
    },
    /// Create a template (boolean unless --type says otherwise).
    ///
    /// `--on ENV` gives flags made from it a starting configuration in ENV that is enabled
    /// and serves the first variation (for booleans `on`; off variation `off`, else the
    /// last). Richer starting configurations (targets, rules, rollouts) go in a YAML or JSON
    /// body given with --from-file, or through the API.
    Create(CreateArgs),
    /// Delete a template (flags made from it stay as they are).
    Delete {
        /// The template's key.
        key: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The template's key: letters, digits, `_`, `.` and `-`, starting with a letter or digit.
    key: String,
    /// Display name (default: the key).
    #[arg(long)]
    name: Option<String>,
    /// The type of the values its flags serve (default: boolean).
    #[arg(long = "type", value_enum)]
    kind: Option<FlagType>,
    /// What flags made from it are for.
    #[arg(long)]
    description: Option<String>,
    /// A variation `KEY=VALUE` (repeat; needed for string, number and json templates). The
    /// value is taken as text for string templates and as JSON otherwise.
    #[arg(long = "variation", value_name = "KEY=VALUE", value_parser = parse_variation)]
    variations: Vec<(String, String)>,
    /// A tag of its flags (repeat for several, or separate with commas).
    #[arg(long = "tag", value_delimiter = ',', value_name = "TAG")]
    tags: Vec<String>,
    /// Its flags are temporary (meant to be removed once rolled out).
    #[arg(long)]
    temporary: bool,
    /// Its flags are visible to client and mobile keys.
    #[arg(long)]
    client_side: bool,
    /// Flags made from it start enabled in this environment (key), serving the first
    /// variation (repeat, or separate with commas). Elsewhere they start off.
    #[arg(long = "on", value_delimiter = ',', value_name = "ENV")]
    on: Vec<String>,
    /// The template's body as YAML or JSON (`-` reads standard input), as the API takes it
    /// (`vexil templates get KEY --json` writes one): the options given here win over it.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) async fn run(
    c: &Client,
    project: &str,
    command: TemplatesCommand,
) -> Result<(), Failure> {
    let p = c.project(project).await?;
    match command {
        TemplatesCommand::List => list_templates(c, &p).await,
        TemplatesCommand::Get { key } => get(c, &p, &key).await,
        TemplatesCommand::Create(args) => create(c, &p, args).await,
        TemplatesCommand::Delete { key } => delete(c, &p, &key).await,
    }
}

async fn all(c: &Client, p: &Project) -> Result<Vec<Value>, Failure> {
    c.list_all(&["projects", &p.id, "flag-templates"], &[])
        .await
}

/// The template with this key (or id).
async fn find(c: &Client, p: &Project, key: &str) -> Result<Value, Failure> {
    let templates = all(c, p).await?;
    templates
        .iter()
        .find(|t| text(t, "key") == key)
        .or_else(|| templates.iter().find(|t| text(t, "id") == key))
        .cloned()
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "no template '{}' in project '{}'{}",
                clean(key),
                p.key,
                super::client::known(&templates, "its templates")
            ))
        })
}

/// The keys of the environments a template configures, in order.
fn configured(template: &Value) -> Vec<String> {
    template
        .get("environments")
        .and_then(Value::as_object)
        .map(|envs| envs.keys().map(|k| clean(k)).collect())
        .unwrap_or_default()
}

async fn list_templates(c: &Client, p: &Project) -> Result<(), Failure> {
    let templates = all(c, p).await?;
    if c.json {
        let total = templates.len();
        return emit_json(&json!({"items": templates, "total": total}));
    }
    if templates.is_empty() {
        return emit(&format!("no templates in project '{}'\n", p.key));
    }
    let mut table = Table::new(&["key", "name", "type", "tags", "temporary", "environments"]);
    for t in &templates {
        let envs = configured(t);
        table.row(vec![
            text(t, "key"),
            text(t, "name"),
            text(t, "type"),
            list(t, "tags"),
            yes_no(t, "temporary"),
            if envs.is_empty() {
                "-".to_owned()
            } else {
                envs.join(", ")
            },
        ]);
    }
    emit(&table.render())
}

async fn get(c: &Client, p: &Project, key: &str) -> Result<(), Failure> {
    let template = find(c, p, key).await?;
    if c.json {
        return emit_json(&template);
    }
    let variations = template
        .get("variations")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| format!("{}={}", text(v, "key"), v["value"]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut out = details(&[
        ("key", text(&template, "key")),
        ("name", text(&template, "name")),
        ("id", text(&template, "id")),
        ("project", p.key.clone()),
        ("type", text(&template, "type")),
        ("description", text(&template, "description")),
        ("variations", variations),
        ("tags", list(&template, "tags")),
        ("client side", yes_no(&template, "client_side")),
        ("temporary", yes_no(&template, "temporary")),
        ("version", text(&template, "version")),
        ("created", time(&template, "created_at", "-")),
        ("updated", time(&template, "updated_at", "-")),
    ]);
    out.push('\n');
    let envs = template
        .get("environments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if envs.is_empty() {
        out.push_str("no starting configuration: its flags start off in every environment\n");
        return emit(&out);
    }
    let mut table = Table::new(&CONFIG_COLUMNS);
    for (env, config) in &envs {
        table.row(config_cells(env, config));
    }
    out.push_str(&table.render());
    out.push_str("(elsewhere its flags start off)\n");
    emit(&out)
}

/// A template body from YAML or, when it starts with `{`, JSON; a mapping, without the
/// fields the server sets (so that `templates get --json` output can be used as it is).
fn parse_body(name: &str, source: &str) -> Result<Map<String, Value>, Failure> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let body: Value = if source.trim_start().starts_with('{') {
        serde_json::from_str(source)
            .map_err(|e| Failure::Refused(format!("{name}: not valid JSON: {e}")))?
    } else {
        let yaml: serde_norway::Value = serde_norway::from_str(source)
            .map_err(|e| Failure::Refused(format!("{name}: not valid YAML: {e}")))?;
        serde_json::to_value(&yaml).map_err(|e| {
            Failure::Refused(format!("{name}: YAML the API cannot take as JSON: {e}"))
        })?
    };
    let Value::Object(mut body) = body else {
        return Err(Failure::Refused(format!(
            "{name}: not a template: expected a mapping with `type`, `variations`, `environments`…"
        )));
    };
    for field in ["id", "project_id", "version", "created_at", "updated_at"] {
        body.remove(field);
    }
    Ok(body)
}

/// The simple starting configuration of `--on`: enabled, serving the first variation
/// (`on` for booleans), the off variation `off` for booleans, else the last.
fn starting_config(kind: &str, variations: &[Value]) -> Option<Value> {
    let keys: Vec<String> = variations.iter().map(|v| text(v, "key")).collect();
    let (first, last) = if keys.is_empty() && kind == "boolean" {
        ("on".to_owned(), "off".to_owned())
    } else {
        (keys.first()?.clone(), keys.last()?.clone())
    };
    let has = |k: &str| keys.is_empty() || keys.iter().any(|x| x == k);
    let (serve, off) = if kind == "boolean" && has("on") && has("off") {
        ("on".to_owned(), "off".to_owned())
    } else {
        (first, last)
    };
    Some(json!({"enabled": true, "off_variation": off, "fallthrough": {"variation": serve}}))
}

async fn create(c: &Client, p: &Project, args: CreateArgs) -> Result<(), Failure> {
    let mut body = match &args.from_file {
        Some(path) => parse_body(&shown(path), &read_source(path)?)?,
        None => Map::new(),
    };
    body.insert("key".to_owned(), Value::String(args.key.clone()));
    if let Some(kind) = args.kind {
        body.insert("type".to_owned(), json!(type_name(kind)));
    }
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("boolean")
        .to_owned();
    if let Some(name) = args.name {
        body.insert("name".to_owned(), Value::String(name));
    }
    if let Some(description) = args.description {
        body.insert("description".to_owned(), Value::String(description));
    }
    if !args.variations.is_empty() {
        let variations = variations_of(&kind, args.variations)?;
        body.insert("variations".to_owned(), Value::Array(variations));
    }
    if !args.tags.is_empty() {
        body.insert("tags".to_owned(), json!(args.tags));
    }
    if args.temporary {
        body.insert("temporary".to_owned(), Value::Bool(true));
    }
    if args.client_side {
        body.insert("client_side".to_owned(), Value::Bool(true));
    }
    if let Some(comment) = args.comment {
        body.insert("comment".to_owned(), Value::String(comment));
    }
    if !args.on.is_empty() {
        let environments = c.environments(&p.id).await?;
        let variations = body
            .get("variations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let config = starting_config(&kind, &variations).ok_or_else(|| {
            Failure::Usage(format!(
                "--on: a {kind} template needs its variations (--variation KEY=VALUE)"
            ))
        })?;
        let mut configs = match body.remove("environments") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for wanted in args.on.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let env = pick_environment(&environments, wanted, &p.key)?;
            configs.insert(text(env, "key"), config.clone());
        }
        body.insert("environments".to_owned(), Value::Object(configs));
    }
    let template = c
        .post(&["projects", &p.id, "flag-templates"], &Value::Object(body))
        .await?;
    if c.json {
        return emit_json(&template);
    }
    let envs = configured(&template);
    let starts = if envs.is_empty() {
        "its flags start off in every environment".to_owned()
    } else {
        format!("its flags start configured in {}", envs.join(", "))
    };
    emit(&format!(
        "created template '{}' ({}) in project '{}'; {starts} (id {})\n",
        text(&template, "key"),
        text(&template, "type"),
        p.key,
        text(&template, "id"),
    ))
}

async fn delete(c: &Client, p: &Project, key: &str) -> Result<(), Failure> {
    let template = find(c, p, key).await?;
    c.delete(&["flag-templates", &text(&template, "id")])
        .await?;
    if c.json {
        return emit_json(&template);
    }
    emit(&format!(
        "deleted template '{}' in project '{}' (flags made from it stay as they are)\n",
        text(&template, "key"),
        p.key
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_starts_enabled_serving_the_first_variation() {
        assert_eq!(
            starting_config("boolean", &[]),
            Some(
                json!({"enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}})
            )
        );
        let theme = [
            json!({"key": "modern", "value": "m"}),
            json!({"key": "classic", "value": "c"}),
        ];
        assert_eq!(
            starting_config("string", &theme),
            Some(
                json!({"enabled": true, "off_variation": "classic", "fallthrough": {"variation": "modern"}})
            )
        );
        assert_eq!(starting_config("number", &[]), None);
    }

    #[test]
    fn bodies_are_read_as_yaml_or_json_without_the_servers_fields() {
        let yaml = parse_body(
            "t.yaml",
            "type: boolean\ntags: [release]\nenvironments:\n  development:\n    enabled: true\n    off_variation: 'off'\n    fallthrough: {variation: 'on'}\n",
        )
        .expect("YAML");
        assert_eq!(yaml["tags"], json!(["release"]));
        assert_eq!(
            yaml["environments"]["development"]["fallthrough"]["variation"],
            "on"
        );
        let json = parse_body(
            "t.json",
            r#"{"id": "x", "version": 3, "key": "k", "type": "boolean"}"#,
        )
        .expect("JSON");
        assert_eq!(Value::Object(json), json!({"key": "k", "type": "boolean"}));
        assert!(parse_body("t.yaml", "- 1\n").is_err());
    }
}
