//! Flags as code: a project as one document — its segments, and its flags with their
//! variations and per-environment configurations — read by [`export`] and applied by
//! [`import`] in one transaction, all or nothing. Every change goes through the same
//! operations as the API's (validation, versions, revisions, one audit entry per change
//! with the import's comment); a dry run does everything and rolls it back, so that its
//! plan is exactly what applying would do. Applying a document twice changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vexil_core::{FlagType, SegmentRule, Variation};

use super::fields::{Patch, check_comment};
use super::flag_configs::commit_in;
use super::flags::actions::archive_in;
use super::{By, Error, Result, delete_in, flags as flag_ops, load, segments as segment_ops};
use crate::access::Principal;
use crate::audit::Action;
use crate::store::flags::configs::{self, Config};
use crate::store::flags::{self, Flag};
use crate::store::projects::Project;
use crate::store::segments::{self, Segment};
use crate::store::{Store, environments};

/// Most flags, and most segments, one document may hold.
const MAX_ITEMS: usize = 2_000;

/// A project as code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project": "default",
    "segments": [{"key": "staff", "name": "Staff", "description": "", "included": [], "excluded": [],
        "rules": [{"id": "r1", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]}]}],
    "flags": [{"key": "new-checkout", "name": "New checkout", "description": "", "type": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "tags": ["checkout"], "client_side": false, "temporary": true, "archived": false,
        "environments": {"production": {"enabled": true, "off_variation": "off",
            "fallthrough": {"variation": "on"}, "targets": [], "rules": [], "prerequisites": [], "watch_events": []}}}]}))]
pub(crate) struct Document {
    /// The project's key (informational: a document is imported into the URL's project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub(crate) segments: Vec<SegmentDoc>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub(crate) flags: Vec<FlagDoc>,
}

/// A segment as code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SegmentDoc {
    pub(crate) key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) included: Vec<String>,
    #[serde(default)]
    pub(crate) excluded: Vec<String>,
    #[serde(default)]
    pub(crate) rules: Vec<SegmentRule>,
}

/// A flag as code, with its configuration in each environment it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagDoc {
    pub(crate) key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    /// Default `boolean`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<FlagType>,
    /// Default for booleans: `on` and `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variations: Option<Vec<Variation>>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) client_side: bool,
    #[serde(default)]
    pub(crate) temporary: bool,
    #[serde(default)]
    pub(crate) archived: bool,
    /// Environment key → configuration; environments not named are left as they are.
    #[serde(default)]
    pub(crate) environments: BTreeMap<String, Config>,
}

fn segment_doc(s: &Segment) -> SegmentDoc {
    SegmentDoc {
        key: s.key.clone(),
        name: Some(s.name.clone()),
        description: s.description.clone(),
        included: s.definition.included.clone(),
        excluded: s.definition.excluded.clone(),
        rules: s.definition.rules.clone(),
    }
}

fn flag_doc(f: &Flag) -> FlagDoc {
    FlagDoc {
        key: f.key.clone(),
        name: Some(f.name.clone()),
        description: f.description.clone(),
        kind: Some(f.kind),
        variations: Some(f.variations.clone()),
        tags: f.tags.clone(),
        client_side: f.client_side,
        temporary: f.temporary,
        archived: f.archived,
        environments: BTreeMap::new(),
    }
}

/// The project as a document, flags and segments by key; `environment` (a key) keeps only
/// that environment's configurations.
pub(crate) async fn export(
    store: &Store,
    project_id: &str,
    environment: Option<&str>,
) -> Result<Document> {
    let mut conn = store.read().await?;
    let project: Project = load(&mut conn, project_id).await?;
    let envs = environments::list_all(&mut conn, project_id).await?;
    if let Some(key) = environment
        && !envs.iter().any(|e| e.key == key)
    {
        return Err(Error::invalid_field(
            "environment",
            format!("no environment '{key}' in this project"),
        ));
    }
    let (mut all_segments, _) = segments::list(&mut conn, project_id, i64::MAX, 0).await?;
    // Byte order on every backend (collations differ).
    all_segments.sort_by(|a, b| a.key.cmp(&b.key));
    let mut flag_docs = Vec::new();
    let mut all_flags = flags::list_all(&mut conn, project_id).await?;
    all_flags.sort_by(|a, b| a.key.cmp(&b.key));
    for flag in &all_flags {
        let mut doc = flag_doc(flag);
        for c in configs::of_flag(&mut conn, &flag.id).await? {
            if environment.is_none_or(|key| key == c.environment_key) {
                doc.environments.insert(c.environment_key, c.config);
            }
        }
        flag_docs.push(doc);
    }
    Ok(Document {
        project: Some(project.key),
        segments: all_segments.iter().map(segment_doc).collect(),
        flags: flag_docs,
    })
}

/// What an import is asked to do.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"document": {"flags": [{"key": "new-checkout", "environments": {}}]},
    "dry_run": true, "prune": false, "comment": "vexil apply -f flags.yaml"}))]
pub(crate) struct ImportInput {
    /// The document, as `GET …/export` answers it.
    pub(crate) document: Document,
    /// Work out and check every change, then change nothing.
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// Also delete the project's flags and segments the document does not name.
    #[serde(default)]
    pub(crate) prune: bool,
    /// The comment of every change's audit entry and revision (default: `import`).
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// One change of an import.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Planned {
    /// `create`, `update` or `delete`.
    pub(crate) op: &'static str,
    /// `segment`, `flag` or `config`.
    pub(crate) kind: &'static str,
    pub(crate) key: String,
    /// The environment of a configuration change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) environment: Option<String>,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"applied": true, "changes": [{"op": "update", "kind": "config", "key": "new-checkout",
    "environment": "production", "before": {"enabled": false}, "after": {"enabled": true}}]}))]
pub(crate) struct Imported {
    /// Whether the changes were made (false for a dry run).
    pub(crate) applied: bool,
    pub(crate) changes: Vec<Planned>,
}

fn doc_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Checks what needs no database: sizes, keys named twice, the comment.
fn check(doc: &Document, comment: Option<&str>) -> Result<()> {
    check_comment(comment)?;
    let mut fields = Map::new();
    for (what, keys) in [
        (
            "segments",
            doc.segments
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>(),
        ),
        ("flags", doc.flags.iter().map(|f| f.key.as_str()).collect()),
    ] {
        if keys.len() > MAX_ITEMS {
            fields.insert(
                format!("document.{what}"),
                json!(format!("at most {MAX_ITEMS}")),
            );
        }
        let mut seen = HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            if !seen.insert(*key) {
                fields.insert(
                    format!("document.{what}[{i}].key"),
                    json!(format!("'{key}' is named twice")),
                );
            }
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_fields(fields))
    }
}

/// Prefixes the field paths of an invalid-input error with where the item is.
fn at(prefix: String) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::Invalid { fields, .. } => {
            let fields: Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (format!("{prefix}.{k}"), v))
                .collect();
            Error::invalid_fields(fields)
        }
        other => other,
    }
}

/// Applies `input.document` to the project, all or nothing (see the module's docs).
pub(crate) async fn import(
    store: &Store,
    principal: &Principal,
    by: &By,
    project_id: &str,
    input: ImportInput,
) -> Result<Imported> {
    let comment = input
        .comment
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "import".into());
    check(&input.document, Some(&comment))?;
    let change = by.because(Some(&comment));
    let doc = &input.document;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    let envs: HashMap<String, environments::Environment> =
        environments::list_all(tx.conn(), project_id)
            .await?
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
    let mut changes = Vec::new();

    // Segments first (flag rules may name them), each after the segments it names.
    for i in segment_order(&doc.segments) {
        let s = &doc.segments[i];
        let place = format!("document.segments[{i}]");
        let existing = segments::get_by_key(tx.conn(), project_id, &s.key).await?;
        match existing {
            Some(before) => {
                let patch = Patch {
                    changes: json!({"name": s.name.clone().unwrap_or_else(|| before.name.clone()),
                        "description": s.description, "included": s.included,
                        "excluded": s.excluded, "rules": s.rules})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                    comment: None,
                };
                let after =
                    segment_ops::update_in_tx(tx.conn(), principal, change, &before, &patch)
                        .await
                        .map_err(at(place))?;
                if after.version != before.version {
                    changes.push(Planned {
                        op: "update",
                        kind: "segment",
                        key: s.key.clone(),
                        environment: None,
                        before: Some(doc_value(&segment_doc(&before))),
                        after: Some(doc_value(&segment_doc(&after))),
                    });
                }
            }
            None => {
                let input: segment_ops::NewSegment = serde_json::from_value(json!({
                    "key": s.key, "name": s.name, "description": s.description,
                    "included": s.included, "excluded": s.excluded, "rules": s.rules}))
                .map_err(|e| Error::invalid_field(&place, e.to_string()))?;
                let (segment, _) = input
                    .into_segment(project_id.to_owned())
                    .map_err(at(place.clone()))?;
                let created = segment_ops::create_in(tx.conn(), change, segment)
                    .await
                    .map_err(at(place))?;
                changes.push(Planned {
                    op: "create",
                    kind: "segment",
                    key: s.key.clone(),
                    environment: None,
                    before: None,
                    after: Some(doc_value(&segment_doc(&created))),
                });
            }
        }
    }

    // Flag definitions, then configurations (prerequisites may name flags made here).
    let mut current: Vec<Flag> = Vec::with_capacity(doc.flags.len());
    for (i, f) in doc.flags.iter().enumerate() {
        let place = format!("document.flags[{i}]");
        let existing = flags::get_by_key(tx.conn(), project_id, &f.key).await?;
        let flag = match existing {
            Some(before) => {
                if let Some(kind) = f.kind
                    && kind != before.kind
                {
                    return Err(Error::invalid_field(
                        &format!("{place}.type"),
                        "cannot be changed (delete the flag and create it again)",
                    ));
                }
                let patch = Patch {
                    changes: json!({"name": f.name.clone().unwrap_or_else(|| before.name.clone()),
                        "description": f.description,
                        "variations": f.variations.clone().unwrap_or_else(|| before.variations.clone()),
                        "tags": f.tags, "client_side": f.client_side, "temporary": f.temporary})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                    comment: None,
                };
                let after = flag_ops::update_def_in(tx.conn(), principal, change, &before, &patch)
                    .await
                    .map_err(at(place))?;
                if after.version != before.version {
                    changes.push(Planned {
                        op: "update",
                        kind: "flag",
                        key: f.key.clone(),
                        environment: None,
                        before: Some(doc_value(&flag_doc(&before))),
                        after: Some(doc_value(&flag_doc(&after))),
                    });
                }
                after
            }
            None => {
                let input: flag_ops::NewFlag = serde_json::from_value(json!({
                    "key": f.key, "name": f.name, "description": f.description, "type": f.kind,
                    "variations": f.variations, "tags": f.tags, "client_side": f.client_side,
                    "temporary": f.temporary}))
                .map_err(|e| Error::invalid_field(&place, e.to_string()))?;
                let flag = flag_ops::prepare(project_id, input).map_err(at(place.clone()))?;
                flag_ops::create_in(tx.conn(), &flag, change)
                    .await
                    .map_err(at(place))?;
                changes.push(Planned {
                    op: "create",
                    kind: "flag",
                    key: f.key.clone(),
                    environment: None,
                    before: None,
                    after: Some(doc_value(&flag_doc(&flag))),
                });
                flag
            }
        };
        current.push(flag);
    }
    // Restored before the configurations (an archived flag cannot be turned on), archived
    // after them, all the document archives together (prerequisites among them allowed).
    let archiving: HashSet<String> = doc
        .flags
        .iter()
        .zip(&current)
        .filter(|(f, _)| f.archived)
        .map(|(_, flag)| flag.id.clone())
        .collect();
    set_archived(
        &mut tx,
        principal,
        change,
        doc,
        &current,
        false,
        &archiving,
        &mut changes,
    )
    .await?;
    for (i, (f, flag)) in doc.flags.iter().zip(&current).enumerate() {
        let flag = &load::<Flag>(tx.conn(), &flag.id).await?;
        for (env_key, config) in &f.environments {
            let place = format!("document.flags[{i}].environments.{env_key}");
            let Some(env) = envs.get(env_key) else {
                return Err(Error::invalid_field(
                    &place,
                    format!("no environment '{env_key}' in this project"),
                ));
            };
            let before = configs::get(tx.conn(), &flag.id, &env.id)
                .await?
                .ok_or_else(|| Error::not_found("flag configuration", &flag.key))?;
            // As it is (rules without ids matched to the stored ones): nothing to change,
            // nothing to hold for approval or refuse for a release plan.
            let mut probe = config.clone();
            super::fields::assign_rule_ids(&mut probe.rules, &before.config.rules, String::new);
            if probe == before.config {
                continue;
            }
            let after = commit_in(
                tx.conn(),
                flag,
                &before,
                config.clone(),
                change,
                Some(Action::FlagConfigUpdate),
            )
            .await
            .map_err(at(place))?;
            if after.version != before.version {
                if env.protected {
                    let what = format!(
                        "the import changes flag '{}' in protected environment '{env_key}'",
                        flag.key
                    );
                    crate::manage::access::require_admin_for(
                        tx.conn(),
                        principal,
                        &by.meta,
                        Some(what),
                    )
                    .await?;
                }
                changes.push(Planned {
                    op: "update",
                    kind: "config",
                    key: f.key.clone(),
                    environment: Some(env_key.clone()),
                    before: Some(doc_value(&before.config)),
                    after: Some(doc_value(&after.config)),
                });
            }
        }
    }
    set_archived(
        &mut tx,
        principal,
        change,
        doc,
        &current,
        true,
        &archiving,
        &mut changes,
    )
    .await?;

    if input.prune {
        let named: HashSet<&str> = doc.flags.iter().map(|f| f.key.as_str()).collect();
        let mut doomed: Vec<Flag> = flags::list_all(tx.conn(), project_id)
            .await?
            .into_iter()
            .filter(|f| !named.contains(f.key.as_str()))
            .collect();
        // Referrers first: a flag whose referrers are all pruned goes after them.
        let mut ordered = Vec::with_capacity(doomed.len());
        while !doomed.is_empty() {
            let keys: HashSet<String> = doomed.iter().map(|f| f.key.clone()).collect();
            let mut next = None;
            for (i, f) in doomed.iter().enumerate() {
                let referrers = flags::referrers(tx.conn(), project_id, &f.key).await?;
                if referrers
                    .iter()
                    .all(|r| !keys.contains(&r.flag) || r.flag == f.key)
                {
                    next = Some(i);
                    break;
                }
            }
            // A cycle, or referrers that stay: deleting reports them.
            ordered.push(doomed.remove(next.unwrap_or(0)));
        }
        for flag in ordered {
            protected_needs_admin(tx.conn(), principal, by, &flag, "delete").await?;
            flag_ops::unless_a_prerequisite(&mut tx, &flag).await?;
            delete_in(tx.conn(), change, &flag, Action::FlagDelete).await?;
            changes.push(Planned {
                op: "delete",
                kind: "flag",
                key: flag.key.clone(),
                environment: None,
                before: Some(doc_value(&flag_doc(&flag))),
                after: None,
            });
        }
        let named: HashSet<&str> = doc.segments.iter().map(|s| s.key.as_str()).collect();
        let (all, _) = segments::list(tx.conn(), project_id, i64::MAX, 0).await?;
        let mut doomed: Vec<Segment> = all
            .into_iter()
            .filter(|s| !named.contains(s.key.as_str()))
            .collect();
        // Segments that name others go first.
        let mut ordered = Vec::with_capacity(doomed.len());
        while !doomed.is_empty() {
            let keys: HashSet<String> = doomed.iter().map(|s| s.key.clone()).collect();
            let mut next = None;
            for (i, s) in doomed.iter().enumerate() {
                let referrers = segments::referrers(tx.conn(), project_id, &s.key).await?;
                let blocked = referrers.iter().any(|r| {
                    matches!(r, segments::Referrer::Segment { segment } if keys.contains(segment))
                });
                if !blocked {
                    next = Some(i);
                    break;
                }
            }
            ordered.push(doomed.remove(next.unwrap_or(0)));
        }
        for segment in ordered {
            segment_ops::unless_referenced(&mut tx, &segment).await?;
            delete_in(tx.conn(), change, &segment, Action::SegmentDelete).await?;
            changes.push(Planned {
                op: "delete",
                kind: "segment",
                key: segment.key.clone(),
                environment: None,
                before: Some(doc_value(&segment_doc(&segment))),
                after: None,
            });
        }
    }

    if input.dry_run {
        // Dropped without commit: rolled back.
        drop(tx);
        return Ok(Imported {
            applied: false,
            changes,
        });
    }
    tx.commit().await?;
    Ok(Imported {
        applied: !changes.is_empty(),
        changes,
    })
}

/// The order in which to apply the document's segments: each after the segments of the
/// document it names (`in_segment`), otherwise as listed; a cycle keeps the listed order
/// (validation then reports it).
fn segment_order(docs: &[SegmentDoc]) -> Vec<usize> {
    let index: HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let names = |s: &SegmentDoc| -> Vec<usize> {
        s.rules
            .iter()
            .flat_map(|r| &r.clauses)
            .filter(|c| c.op == vexil_core::Op::InSegment)
            .flat_map(|c| &c.values)
            .filter_map(|v| v.as_str().and_then(|k| index.get(k).copied()))
            .collect()
    };
    let mut order = Vec::with_capacity(docs.len());
    let mut state = vec![0u8; docs.len()]; // 0 new, 1 in progress, 2 placed
    fn visit(
        i: usize,
        docs: &[SegmentDoc],
        names: &dyn Fn(&SegmentDoc) -> Vec<usize>,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for j in names(&docs[i]) {
            visit(j, docs, names, state, order);
        }
        state[i] = 2;
        order.push(i);
    }
    for i in 0..docs.len() {
        visit(i, docs, &names, &mut state, &mut order);
    }
    order
}

/// Admin needed to delete, archive or restore a flag that is on in a protected
/// environment (as the API's own routes for those ask).
async fn protected_needs_admin(
    conn: &mut crate::store::Conn,
    principal: &Principal,
    by: &By,
    flag: &Flag,
    what: &str,
) -> Result<()> {
    let protected = crate::store::scopes::protected_enabled_environments(conn, &flag.id).await?;
    if protected.is_empty() {
        return Ok(());
    }
    let why = format!(
        "the import would {what} flag '{}', which is on in protected environment(s) {}",
        flag.key,
        protected.join(", ")
    );
    crate::manage::access::require_admin_for(conn, principal, &by.meta, Some(why)).await
}

/// Restores (`archive` false) or archives (`archive` true) the document's flags whose state
/// differs, recording each; `archiving` holds the ids of every flag the document archives.
#[allow(clippy::too_many_arguments)]
async fn set_archived(
    tx: &mut crate::store::WriteTx<'_>,
    principal: &Principal,
    change: super::Change<'_>,
    doc: &Document,
    current: &[Flag],
    archive: bool,
    archiving: &HashSet<String>,
    changes: &mut Vec<Planned>,
) -> Result<()> {
    for (i, (f, flag)) in doc.flags.iter().zip(current).enumerate() {
        if f.archived != archive {
            continue;
        }
        let reloaded = load::<Flag>(tx.conn(), &flag.id).await?;
        if reloaded.archived == archive {
            continue;
        }
        let what = if archive { "archive" } else { "restore" };
        protected_needs_admin(tx.conn(), principal, change.by, &reloaded, what).await?;
        let before = flag_doc(&reloaded);
        let after = archive_in(tx.conn(), reloaded, archive, archiving, change)
            .await
            .map_err(at(format!("document.flags[{i}].archived")))?;
        changes.push(Planned {
            op: "update",
            kind: "flag",
            key: f.key.clone(),
            environment: None,
            before: Some(doc_value(&before)),
            after: Some(doc_value(&flag_doc(&after))),
        });
    }
    Ok(())
}
