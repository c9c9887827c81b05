//! `vexil export` and `vexil apply`: flags as code. Export writes the project's document
//! (`GET …/export`) as YAML, keys in the server's order; apply reads a YAML or JSON
//! document, sends it to `POST …/import` (all or nothing, or a dry run) and prints the
//! plan as a diff: one line per change, and for updates the fields that change.
//!
//! The server's answers are read into [`Ordered`] values (YAML's mapping keeps the order of
//! its keys), never into `serde_json::Value`, whose maps sort their keys: an export prints
//! fields as the API lists them (`key`, `name`, … `environments`), and so does a plan.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Client, Failure, pick_environment};
use super::table::{clean, emit, text};

/// A JSON or YAML value that keeps its mappings' keys in order.
type Ordered = serde_norway::Value;

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Only this environment's configurations (its key).
    #[arg(long, value_name = "KEY")]
    environment: Option<String>,
    /// Write the document to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The document, YAML or JSON (told apart by its content); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Work out and print the plan, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete the project's flags and segments the document does not name.
    #[arg(long)]
    prune: bool,
    /// The comment of every change's audit entry and revision (default: `vexil apply -f FILE`).
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) async fn export(c: &Client, project: &str, args: ExportArgs) -> Result<(), Failure> {
    let p = c.project(project).await?;
    let mut query = Vec::new();
    if let Some(wanted) = &args.environment {
        // Looked up here, so that an unknown key is "not found" (3) like everywhere else.
        let environments = c.environments(&p.id).await?;
        let env = pick_environment(&environments, wanted, &p.key)?;
        query.push(("environment", text(env, "key")));
    }
    let document: Ordered = c.get_as(&["projects", &p.id, "export"], &query).await?;
    let rendered = if c.json {
        json_text(&document)?
    } else {
        serde_norway::to_string(&document)
            .map_err(|e| Failure::Refused(format!("cannot write the document as YAML: {e}")))?
    };
    let Some(path) = args.output else {
        return emit(&rendered);
    };
    std::fs::write(&path, rendered)
        .map_err(|e| Failure::Refused(format!("cannot write {}: {e}", path.display())))?;
    if c.json {
        return Ok(());
    }
    let count = |field: &str| {
        document
            .get(field)
            .and_then(Ordered::as_sequence)
            .map_or(0, Vec::len)
    };
    emit(&format!(
        "exported project '{}' ({}, {}) to {}\n",
        p.key,
        plural(count("segments"), "segment"),
        plural(count("flags"), "flag"),
        clean(&path.display().to_string()),
    ))
}

pub(crate) async fn apply(c: &Client, project: &str, args: ApplyArgs) -> Result<(), Failure> {
    let name = args.file.display().to_string();
    let source = read_source(&args.file)?;
    let document = parse_document(&shown(&args.file), &source)?;
    let p = c.project(project).await?;
    if let Some(theirs) = document.get("project").and_then(Value::as_str)
        && theirs != p.key
        && theirs != p.id
    {
        eprintln!(
            "warning: the document was exported from project '{}'; applying it to project '{}'",
            clean(theirs),
            p.key
        );
    }
    let comment = args
        .comment
        .unwrap_or_else(|| format!("vexil apply -f {name}"));
    let body = json!({
        "document": document,
        "dry_run": args.dry_run,
        "prune": args.prune,
        "comment": comment,
    });
    let answer: Ordered = c.post_as(&["projects", &p.id, "import"], &body).await?;
    if c.json {
        return emit(&json_text(&answer)?);
    }
    let imported: Imported = serde_norway::from_value(answer).map_err(|e| {
        Failure::Refused(format!(
            "the import's answer is not what the CLI reads: {e}"
        ))
    })?;
    emit(&plan(&imported, args.dry_run))
}

/// The file's text, or standard input's for `-`.
pub(crate) fn read_source(path: &Path) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(path).map(|b| bytes = b)
    };
    let name = shown(path);
    read.map_err(|e| Failure::Usage(format!("cannot read {name}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        Failure::Refused(format!(
            "{name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The file's name in messages (`-` is standard input).
pub(crate) fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        clean(&path.display().to_string())
    }
}

/// A document from YAML or, when it starts with `{`, JSON; it must be a mapping.
fn parse_document(name: &str, source: &str) -> Result<Value, Failure> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let document: Value = if source.trim_start().starts_with('{') {
        serde_json::from_str(source)
            .map_err(|e| Failure::Refused(format!("{name}: not valid JSON: {e}")))?
    } else {
        // Through YAML's own value first: it refuses a key written twice in a mapping.
        let yaml: Ordered = serde_norway::from_str(source)
            .map_err(|e| Failure::Refused(format!("{name}: not valid YAML: {e}")))?;
        serde_json::to_value(&yaml).map_err(|e| {
            Failure::Refused(format!("{name}: YAML the API cannot take as JSON: {e}"))
        })?
    };
    if document.is_object() {
        Ok(document)
    } else {
        Err(Failure::Refused(format!(
            "{name}: not a document: expected a mapping with `segments` and `flags`, as `vexil export` writes"
        )))
    }
}

/// Pretty JSON of an ordered value, ending with a newline.
fn json_text(value: &Ordered) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|t| t + "\n")
        .map_err(|e| Failure::Refused(format!("cannot print the answer: {e}")))
}

/// The import's answer.
#[derive(Debug, Deserialize)]
struct Imported {
    changes: Vec<Change>,
}

/// One change of an import's plan.
#[derive(Debug, Deserialize)]
struct Change {
    op: String,
    kind: String,
    key: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    before: Ordered,
    #[serde(default)]
    after: Ordered,
}

/// The plan as a diff: `+ create …`, `~ update …` with the changed fields as `- field:
/// before` and `+ field: after` lines (values as compact JSON), `- delete …`; then a
/// summary line.
fn plan(imported: &Imported, dry_run: bool) -> String {
    let mut out = String::new();
    for change in &imported.changes {
        let sign = match change.op.as_str() {
            "create" => '+',
            "update" => '~',
            "delete" => '-',
            _ => '?',
        };
        let mut header = format!("{sign} {} {} {}", change.op, change.kind, change.key);
        if let Some(env) = &change.environment {
            let _ = write!(header, " in {env}");
        }
        out.push_str(&clean(&header));
        out.push('\n');
        if change.op == "update" {
            for line in field_changes(&change.before, &change.after) {
                out.push_str("    ");
                out.push_str(&clean(&line));
                out.push('\n');
            }
        }
    }
    let n = imported.changes.len();
    out.push_str(&if n == 0 {
        "nothing to change".to_owned()
    } else if dry_run {
        format!("{} planned (dry run: nothing changed)", plural(n, "change"))
    } else {
        format!("{} applied", plural(n, "change"))
    });
    out.push('\n');
    out
}

/// `- field: value` and `+ field: value` for each top-level field that differs, in the
/// order of `before` (then the fields only `after` has).
fn field_changes(before: &Ordered, after: &Ordered) -> Vec<String> {
    let empty = serde_norway::Mapping::new();
    let before = before.as_mapping().unwrap_or(&empty);
    let after = after.as_mapping().unwrap_or(&empty);
    let mut lines = Vec::new();
    for (field, old) in before {
        match after.get(field) {
            Some(new) if new == old => {}
            Some(new) => {
                lines.push(format!("- {}: {}", name(field), compact(old)));
                lines.push(format!("+ {}: {}", name(field), compact(new)));
            }
            None => lines.push(format!("- {}: {}", name(field), compact(old))),
        }
    }
    for (field, new) in after {
        if !before.contains_key(field) {
            lines.push(format!("+ {}: {}", name(field), compact(new)));
        }
    }
    lines
}

fn name(field: &Ordered) -> String {
    field.as_str().map_or_else(|| compact(field), str::to_owned)
}

/// A value as compact JSON (strings quoted, so that `"true"` and `true` differ).
fn compact(value: &Ordered) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// `1 flag`, `3 flags`.
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(json: &str) -> Ordered {
        serde_json::from_str(json).expect("JSON")
    }

    #[test]
    fn a_plan_shows_each_change_and_only_the_fields_that_change() {
        let imported: Imported = serde_norway::from_value(ordered(
            r#"{"applied": false, "changes": [
                {"op": "create", "kind": "flag", "key": "new-checkout", "before": null, "after": {"key": "new-checkout"}},
                {"op": "update", "kind": "config", "key": "banner", "environment": "production",
                 "before": {"enabled": false, "off_variation": "off", "rules": [], "gone": 1},
                 "after": {"enabled": true, "off_variation": "off", "rules": [{"id": "r1", "clauses": []}], "new": "x"}},
                {"op": "delete", "kind": "segment", "key": "old", "before": {"key": "old"}, "after": null}]}"#,
        ))
        .expect("an answer");
        assert_eq!(
            plan(&imported, true),
            "+ create flag new-checkout\n\
             ~ update config banner in production\n    \
             - enabled: false\n    \
             + enabled: true\n    \
             - rules: []\n    \
             + rules: [{\"id\":\"r1\",\"clauses\":[]}]\n    \
             - gone: 1\n    \
             + new: \"x\"\n\
             - delete segment old\n\
             3 changes planned (dry run: nothing changed)\n"
        );
        assert_eq!(
            plan(&imported, false).lines().last(),
            Some("3 changes applied")
        );
        let nothing = Imported { changes: vec![] };
        assert_eq!(plan(&nothing, false), "nothing to change\n");
    }

    #[test]
    fn documents_are_read_as_yaml_or_json_by_content() {
        let yaml = parse_document("a.yaml", "project: default\nflags:\n- key: x\n  tags: []\n")
            .expect("YAML");
        assert_eq!(
            yaml,
            json!({"project": "default", "flags": [{"key": "x", "tags": []}]})
        );
        let json = parse_document("a.json", "\u{feff} {\"flags\": []}").expect("JSON");
        assert_eq!(json, json!({"flags": []}));

        let Err(Failure::Refused(e)) = parse_document("a.yaml", "flags:\n- key: x\n  key: y\n")
        else {
            panic!("a key written twice is refused");
        };
        assert_eq!(
            e,
            "a.yaml: not valid YAML: flags[0]: duplicate entry with key \"key\" at line 2 column 3"
        );
        let Err(Failure::Refused(e)) = parse_document("a.yaml", "flags:\n  - key: [x\n") else {
            panic!("broken YAML is refused");
        };
        assert!(e.contains("line") && e.contains("column"), "{e}");
        let Err(Failure::Refused(e)) = parse_document("a.json", "{\"flags\": [}") else {
            panic!("broken JSON is refused");
        };
        assert!(e.contains("line 1 column 12"), "{e}");
        assert!(
            parse_document("a.yaml", "- 1\n").is_err(),
            "a list is no document"
        );
        assert!(parse_document("a.yaml", "").is_err(), "nor is nothing");
    }

    #[test]
    fn export_keeps_the_servers_order_of_keys() {
        let doc =
            ordered(r#"{"project": "p", "flags": [{"key": "k", "name": "n", "archived": false}]}"#);
        assert_eq!(
            serde_norway::to_string(&doc).expect("YAML"),
            "project: p\nflags:\n- key: k\n  name: n\n  archived: false\n"
        );
        assert_eq!(
            json_text(&doc).expect("JSON").lines().nth(1),
            Some("  \"project\": \"p\",")
        );
    }
}
