//! `vexil promote --from ENV --to ENV`: environment promotion. Copies flag configurations
//! (every flag that is not archived, or the `--flag`s named) from one environment of the
//! project into another through `POST …/environments/{to}/copy`, all or nothing, and prints
//! which flags changed and which were already the same.

use clap::Args;
use serde_json::{Value, json};

use super::as_code::plural;
use super::client::{Client, Failure, pick_environment};
use super::table::{Table, clean, emit, emit_json, text};

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// The environment copied from (key), e.g. staging.
    #[arg(long, value_name = "ENV")]
    from: String,
    /// The environment copied into (key), e.g. production.
    #[arg(long, value_name = "ENV")]
    to: String,
    /// Only this flag (key; repeat for several, or separate with commas). Default: every
    /// flag that is not archived (an archived flag is copied only when named).
    #[arg(long = "flag", value_delimiter = ',', value_name = "KEY")]
    flags: Vec<String>,
    /// A comment for the audit trail and the revisions (after `copied from <ENV>: `).
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

pub(crate) async fn run(c: &Client, project: &str, args: PromoteArgs) -> Result<(), Failure> {
    let p = c.project(project).await?;
    let environments = c.environments(&p.id).await?;
    let from = pick_environment(&environments, &args.from, &p.key)?;
    let to = pick_environment(&environments, &args.to, &p.key)?;
    let mut body = json!({"from_environment_id": text(from, "id")});
    if !args.flags.is_empty() {
        let mut flags = Vec::new();
        for archived in ["false", "true"] {
            flags.extend(
                c.list_all(
                    &["projects", &p.id, "feature-flags"],
                    &[("archived", archived.to_owned())],
                )
                .await?,
            );
        }
        let mut ids: Vec<String> = Vec::new();
        for key in args
            .flags
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
        {
            let flag = flags
                .iter()
                .find(|f| text(f, "key") == key)
                .ok_or_else(|| {
                    Failure::NotFound(format!("no flag '{}' in project '{}'", clean(key), p.key))
                })?;
            let id = text(flag, "id");
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        body["flag_ids"] = json!(ids);
    }
    if let Some(comment) = args.comment {
        body["comment"] = Value::String(comment);
    }
    let answer = c
        .post(
            &["projects", &p.id, "environments", &text(to, "id"), "copy"],
            &body,
        )
        .await?;
    if c.json {
        return emit_json(&answer);
    }
    emit(&report(&answer, &text(from, "key"), &text(to, "key")))
}

/// A table of the flags (changed first, then those already the same) and a summary line.
fn report(answer: &Value, from: &str, to: &str) -> String {
    let changed = answer
        .get("changed")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let unchanged = answer
        .get("unchanged")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if changed.is_empty() && unchanged.is_empty() {
        return format!("no flags to copy from {} to {}\n", clean(from), clean(to));
    }
    let mut table = Table::new(&["flag", "result", &format!("in {to}"), "version"]);
    for config in changed {
        let on = config.get("enabled").and_then(Value::as_bool) == Some(true);
        table.row(vec![
            text(config, "flag_key"),
            "copied".to_owned(),
            if on { "on" } else { "off" }.to_owned(),
            text(config, "version"),
        ]);
    }
    for key in unchanged {
        table.row(vec![
            super::table::display(key),
            "unchanged".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ]);
    }
    let mut out = table.render();
    out.push_str(&clean(&format!(
        "{} copied from {from} to {to}",
        plural(changed.len(), "configuration")
    )));
    if !unchanged.is_empty() {
        out.push_str(&format!(", {} already the same", unchanged.len()));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_changed_then_unchanged_flags_and_sums_up() {
        let answer = json!({"changed": [
            {"flag_key": "new-checkout", "enabled": true, "version": 4},
            {"flag_key": "banner", "enabled": false, "version": 2}],
            "unchanged": ["dark-mode"]});
        assert_eq!(
            report(&answer, "development", "production"),
            "FLAG          RESULT     IN PRODUCTION  VERSION\n\
             new-checkout  copied     on             4\n\
             banner        copied     off            2\n\
             dark-mode     unchanged  -              -\n\
             2 configurations copied from development to production, 1 already the same\n"
        );
        let same = json!({"changed": [], "unchanged": ["dark-mode"]});
        assert!(report(&same, "staging", "production").ends_with(
            "\n0 configurations copied from staging to production, 1 already the same\n"
        ));
        let one =
            json!({"changed": [{"flag_key": "x", "enabled": true, "version": 2}], "unchanged": []});
        assert!(report(&one, "a", "b").ends_with("\n1 configuration copied from a to b\n"));
        let none = json!({"changed": [], "unchanged": []});
        assert_eq!(report(&none, "a", "b"), "no flags to copy from a to b\n");
    }
}
