//! `vexil serve --offline FILE`: the evaluation plane for local development, from a file
//! instead of a database. The file is an export document (YAML or JSON, as `vexil export`
//! writes it) or a ruleset (the JSON of `/api/v1/sdk/config`). It is imported into a
//! scratch SQLite database of this process (removed when it stops) through the same import
//! as the API's, so that evaluation, OFREP, the SDK configuration and the streams behave
//! exactly as they do on a real server; any API key is accepted and evaluates in one
//! environment. The file is watched: a valid edit is applied within a second (streams
//! send it), an invalid one is reported and the last good version keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde_json::Value;
use vexil_core::Ruleset;

use crate::access::{Principal, Role, Subject};
use crate::manage::By;
use crate::manage::as_code::{self, Document, FlagDoc, ImportInput, SegmentDoc};
use crate::store::Store;
use crate::store::flags::configs::Config;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(200);

/// Reads `text` as an export document or a ruleset (JSON or YAML); a ruleset's flags are
/// configured in `environment`.
pub(crate) fn parse(text: &str, environment: &str) -> anyhow::Result<Document> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(json_error) => serde_norway::from_str(text).map_err(|yaml_error| {
            anyhow::anyhow!("neither JSON ({json_error}) nor YAML ({yaml_error})")
        })?,
    };
    // A ruleset keys its flags by name (an object); a document lists them (an array).
    if value.get("flags").is_some_and(Value::is_object) {
        let ruleset = Ruleset::from_json(&value.to_string())
            .map_err(|e| anyhow::anyhow!("not a valid ruleset: {e}"))?;
        return Ok(from_ruleset(ruleset, environment));
    }
    serde_json::from_value(value).context("not a valid export document")
}

/// A ruleset as a document whose flags are configured in `environment`.
fn from_ruleset(ruleset: Ruleset, environment: &str) -> Document {
    let flags = ruleset
        .flags
        .into_iter()
        .map(|(key, def)| FlagDoc {
            key,
            name: None,
            description: String::new(),
            kind: Some(def.kind),
            variations: Some(def.variations),
            tags: Vec::new(),
            client_side: def.client_side,
            temporary: false,
            archived: def.archived,
            environments: [(
                environment.to_owned(),
                Config {
                    enabled: def.enabled,
                    off_variation: def.off_variation,
                    fallthrough: def.fallthrough,
                    targets: def.targets,
                    rules: def.rules,
                    prerequisites: def.prerequisites,
                    watch_events: Vec::new(),
                },
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let segments = ruleset
        .segments
        .into_iter()
        .map(|(key, def)| SegmentDoc {
            key,
            name: None,
            description: String::new(),
            included: def.included,
            excluded: def.excluded,
            rules: def.rules,
        })
        .collect();
    Document {
        project: None,
        segments,
        flags,
    }
}

/// Where the file is served: the default organization and project.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub(crate) organization_id: String,
    pub(crate) project_id: String,
}

/// Makes the default project what `doc` says (flags and segments it does not name are
/// deleted); how many changes that took.
pub(crate) async fn apply(store: &Store, place: &Place, doc: Document) -> anyhow::Result<usize> {
    let by = By::system().in_organization(&place.organization_id);
    let principal = Principal {
        actor: by.actor.clone(),
        subject: Subject::Instance,
        cap: Role::Owner,
        token_id: None,
        session_id: None,
    };
    let input = ImportInput {
        document: doc,
        dry_run: false,
        prune: true,
        comment: Some("offline file".into()),
    };
    let done = as_code::import(store, &principal, &by, &place.project_id, input)
        .await
        .map_err(|e| match e {
            crate::manage::Error::Invalid { message, fields } => {
                anyhow::anyhow!("{message} {}", Value::Object(fields))
            }
            other => anyhow::Error::new(other),
        })?;
    Ok(done.changes.len())
}

/// Reads and applies the file once (the start: an error stops the server).
pub(crate) async fn load(
    store: &Store,
    place: &Place,
    path: &Path,
    environment: &str,
) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the offline file {}", path.display()))?;
    let doc = parse(&text, environment)
        .with_context(|| format!("the offline file {} is invalid", path.display()))?;
    apply(store, place, doc)
        .await
        .with_context(|| format!("the offline file {} is invalid", path.display()))
}

/// What identifies a version of the file.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches the file until the task is dropped, applying each valid edit; an invalid one
/// is logged and the last good version keeps serving.
pub(crate) async fn watch(store: Arc<Store>, place: Place, path: PathBuf, environment: String) {
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamp(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        match load(&store, &place, &path, &environment).await {
            Ok(changes) => tracing::info!(
                file = %path.display(),
                changes,
                "the offline file changed: applied"
            ),
            Err(e) => tracing::error!(
                file = %path.display(),
                error = format!("{e:#}"),
                "the offline file changed but is invalid; still serving the last good version"
            ),
        }
    }
}

#[cfg(test)]
fn sample_ruleset() -> String {
    use serde_json::json;
    json!({"version": 3, "flags": {"dark-mode": {"type": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}}},
        "segments": {"staff": {"included": ["ann"]}}})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_rulesets_are_read_in_json_and_yaml() {
        let doc = parse(&sample_ruleset(), "production").unwrap();
        assert_eq!(doc.flags[0].key, "dark-mode");
        assert!(doc.flags[0].environments["production"].enabled);
        assert_eq!(doc.segments[0].included, ["ann"]);
        let yaml = "flags:\n  - key: banner\n    environments:\n      development:\n        enabled: true\n        off_variation: 'off'\n        fallthrough: {variation: 'on'}\n";
        let doc = parse(yaml, "production").unwrap();
        assert_eq!(doc.flags[0].key, "banner");
        assert!(doc.flags[0].environments["development"].enabled);
        assert!(parse("flags: [", "production").is_err());
        assert!(parse(r#"{"flags": [{"nope": 1}]}"#, "production").is_err());
    }
}
