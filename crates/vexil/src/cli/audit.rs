//! `vexil audit tail`: the newest audit entries the caller may see (time, actor, action,
//! resource, comment), oldest of them first; `--follow` then asks every 2 seconds for newer
//! ones and prints them as they come, until Ctrl-C.

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, Failure};
use super::table::{Table, emit, emit_json, text, time};

/// How often `--follow` asks for new entries.
const POLL: Duration = Duration::from_secs(2);
/// Page size when catching up while following.
const CATCH_UP_PAGE: usize = 100;
/// At most this many new entries are printed per poll (the rest are skipped, with a note).
const CATCH_UP_MAX: usize = 1000;
/// Minimal column widths, so that followed entries line up with the first ones.
const WIDTHS: [usize; 5] = [20, 16, 22, 28, 0];

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// The newest entries; with --follow, then new ones as they are recorded.
    Tail {
        /// How many entries to show first (1 to 500).
        #[arg(long, short = 'n', default_value_t = 20,
              value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        /// Keep printing new entries (polling every 2 s) until Ctrl-C.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

pub(crate) async fn run(c: &Client, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Tail { limit, follow } = command;
    let page = c
        .get(&["audit-logs"], &[("limit", limit.to_string())])
        .await?;
    let mut entries = items(&page)?;
    let mut last = entries.iter().map(seq).max().unwrap_or(0);
    entries.reverse();
    if c.json && !follow {
        return emit_json(&page);
    }
    print(c, &entries, true)?;
    if !follow {
        return Ok(());
    }
    let mut down = false;
    // One listener for the whole loop, so that a Ctrl-C during a request is not lost.
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
        let polled = tokio::select! {
            _ = &mut stop => return Ok(()),
            polled = newer(c, last) => polled,
        };
        match polled {
            Ok(fresh) => {
                if down {
                    eprintln!("note: the server answers again");
                    down = false;
                }
                if let Some(newest) = fresh.iter().map(seq).max() {
                    last = newest;
                    print(c, &fresh, false)?;
                }
            }
            Err(e) if e.is_transient() => {
                if !down {
                    e.report();
                    eprintln!("note: still following; retrying every {} s", POLL.as_secs());
                    down = true;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn items(page: &Value) -> Result<Vec<Value>, Failure> {
    page.get("items")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| Failure::Refused("the answer has no list of entries".to_owned()))
}

fn seq(entry: &Value) -> u64 {
    entry.get("seq").and_then(Value::as_u64).unwrap_or(0)
}

/// The entries after `last` (by `seq`), oldest first.
async fn newer(c: &Client, last: u64) -> Result<Vec<Value>, Failure> {
    let mut fresh = Vec::new();
    let mut offset = 0;
    loop {
        let page = c
            .get(
                &["audit-logs"],
                &[
                    ("limit", CATCH_UP_PAGE.to_string()),
                    ("offset", offset.to_string()),
                ],
            )
            .await?;
        let batch = items(&page)?;
        let got = batch.len();
        let mut reached = false;
        for entry in batch {
            if seq(&entry) > last {
                fresh.push(entry);
            } else {
                reached = true;
            }
        }
        offset += got;
        if reached || got < CATCH_UP_PAGE {
            break;
        }
        if offset >= CATCH_UP_MAX {
            eprintln!("note: more than {CATCH_UP_MAX} new entries; older ones skipped");
            break;
        }
    }
    fresh.reverse();
    Ok(fresh)
}

/// Entries (oldest first) as table rows, or as JSON lines when following with `--json`.
fn print(c: &Client, entries: &[Value], first: bool) -> Result<(), Failure> {
    if c.json {
        let mut out = String::new();
        for entry in entries {
            out.push_str(&entry.to_string());
            out.push('\n');
        }
        return emit(&out);
    }
    if first && entries.is_empty() {
        return emit("no audit entries yet\n");
    }
    let mut table =
        Table::new(&["time", "actor", "action", "resource", "comment"]).min_widths(&WIDTHS);
    if !first {
        table = table.without_header();
    }
    for entry in entries {
        table.row(vec![
            time(entry, "at", "-"),
            entry
                .get("actor")
                .map(|a| text(a, "name"))
                .unwrap_or_default(),
            text(entry, "action"),
            resource(entry),
            text(entry, "comment"),
        ]);
    }
    emit(&table.render())
}

/// What an entry is about: its type and the resource's key or name when its state says it
/// (`flag new-checkout`, `flag_config new-checkout/production`, a kill switch's
/// `flag new-checkout/development,production`), else its id.
fn resource(entry: &Value) -> String {
    let kind = text(entry, "resource_type");
    let name = [entry.get("after"), entry.get("before")]
        .into_iter()
        .flatten()
        .find_map(named);
    match name {
        Some(name) => format!("{kind} {name}"),
        None => format!("{kind} {}", text(entry, "resource_id")),
    }
}

/// The key or name a recorded state shows (an object, or a list of configurations).
fn named(state: &Value) -> Option<String> {
    if let Some(states) = state.as_array() {
        let flag = text(states.first()?, "flag_key");
        let envs: Vec<String> = states
            .iter()
            .map(|s| text(s, "environment_key"))
            .filter(|e| !e.is_empty())
            .collect();
        return (!flag.is_empty()).then(|| format!("{flag}/{}", envs.join(",")));
    }
    if !state.is_object() {
        return None;
    }
    let flag = text(state, "flag_key");
    let env = text(state, "environment_key");
    if !flag.is_empty() && !env.is_empty() {
        Some(format!("{flag}/{env}"))
    } else if !flag.is_empty() {
        Some(flag)
    } else {
        ["key", "email", "name"]
            .into_iter()
            .map(|k| text(state, k))
            .find(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_are_named_by_key() {
        let config = json!({"resource_type": "flag_config", "resource_id": "x",
            "after": {"flag_key": "a", "environment_key": "production"}});
        assert_eq!(resource(&config), "flag_config a/production");
        let gone = json!({"resource_type": "segment", "resource_id": "x",
            "before": {"key": "beta"}, "after": null});
        assert_eq!(resource(&gone), "segment beta");
        let bare = json!({"resource_type": "token", "resource_id": "x1"});
        assert_eq!(resource(&bare), "token x1");
        let kill = json!({"resource_type": "flag", "resource_id": "x",
            "after": [{"flag_key": "a", "environment_key": "development"},
                      {"flag_key": "a", "environment_key": "production"}]});
        assert_eq!(resource(&kill), "flag a/development,production");
    }
}
