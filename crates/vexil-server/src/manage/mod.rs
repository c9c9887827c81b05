//! The domain layer: every operation that reads or changes state on someone's behalf —
//! validation, versions, revisions, the audit entry, the commit (which updates the
//! snapshots) — with its own error type. It knows neither axum nor HTML: the JSON API
//! (`http`), the console and background jobs call the same operations.
//!
//! An operation that changes something takes a [`By`] (who, and the request's metadata)
//! and usually a comment; it opens one write transaction, records exactly what it changed
//! through [`Change::record`], and commits. Pieces that several operations share inside
//! one transaction take a connection instead (`*_in` functions).

pub(crate) mod access;
pub(crate) mod api_keys;
pub(crate) mod as_code;
pub(crate) mod audit_log;
pub(crate) mod environments;
mod error;
pub(crate) mod fields;
pub(crate) mod flag_configs;
pub(crate) mod flags;
pub(crate) mod insights;
pub(crate) mod members;
pub(crate) mod organizations;
pub(crate) mod pending;
pub(crate) mod playground;
pub(crate) mod projects;
pub(crate) mod promotion;
pub(crate) mod release;
pub(crate) mod segments;
pub(crate) mod sessions;
pub(crate) mod simple;
pub(crate) mod templates;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub(crate) use error::{Error, Result};

use crate::audit::{Action, Actor, RequestMeta};
use crate::store::{Conn, Record, Store, WriteTx, audit};

/// Who changes something: the actor and the request it came with. The organization in
/// `meta` is the one audit entries are filed under.
#[derive(Debug, Clone)]
pub(crate) struct By {
    pub(crate) actor: Actor,
    pub(crate) meta: RequestMeta,
}

impl By {
    /// The server itself (first start, `vexil admin`, jobs).
    pub(crate) fn system() -> By {
        By {
            actor: Actor::system(),
            meta: RequestMeta::default(),
        }
    }

    /// A change made for this actor, with the reason it gives.
    pub(crate) fn because<'a>(&'a self, comment: Option<&'a str>) -> Change<'a> {
        Change {
            by: self,
            comment,
            unheld: false,
            release: false,
        }
    }

    /// The same author, acting in another organization (entries are filed there).
    pub(crate) fn in_organization(&self, organization_id: &str) -> By {
        let mut by = self.clone();
        by.meta.organization_id = Some(organization_id.to_owned());
        by
    }
}

/// One audited change in the making: who, and why. [`Change::record`] writes its audit
/// entry inside the operation's transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub(crate) by: &'a By,
    pub(crate) comment: Option<&'a str>,
    /// Whether a configuration change goes through even where the environment requires
    /// approval: the kill switch (an emergency stop is never held) and an approved change
    /// request being applied.
    pub(crate) unheld: bool,
    /// Whether a release plan makes the change: only its own steps may change the
    /// fallthrough of a configuration it owns.
    pub(crate) release: bool,
}

impl Change<'_> {
    /// The same change, never held for approval.
    pub(crate) fn unheld(self) -> Self {
        Change {
            unheld: true,
            ..self
        }
    }

    /// The same change, made by a release plan (the owner of the fallthrough while it is
    /// live); never held for approval: a rollback is an emergency stop, and the plan's
    /// stages were agreed when it started.
    pub(crate) fn by_release(self) -> Self {
        Change {
            unheld: true,
            release: true,
            ..self
        }
    }

    /// Appends the audit entry for `action` on resource `id`, with the resource as it was
    /// and as it is (`None` for a creation's before and a deletion's after).
    pub(crate) async fn record<T: Serialize>(
        &self,
        conn: &mut Conn,
        action: Action,
        id: &str,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Result<()> {
        let doc = |v: Option<&T>| v.map(serde_json::to_value).transpose();
        let (before, after) = (doc(before)?, doc(after)?);
        self.record_json(conn, action, id, before, after).await
    }

    /// Appends the audit entry of a creation: the resource as it now is.
    pub(crate) async fn created<T: Serialize>(
        &self,
        conn: &mut Conn,
        action: Action,
        id: &str,
        resource: &T,
    ) -> Result<()> {
        self.record(conn, action, id, None, Some(resource)).await
    }

    /// [`Change::record`] with documents already in JSON.
    pub(crate) async fn record_json(
        &self,
        conn: &mut Conn,
        action: Action,
        id: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<()> {
        audit::append(
            conn,
            audit::NewEntry {
                actor: &self.by.actor,
                action,
                resource_id: id,
                before,
                after,
                comment: self.comment,
                meta: &self.by.meta,
            },
        )
        .await?;
        Ok(())
    }
}

/// A record's id and the version the caller expects it at (`If-Match`), if any: where a
/// change or deletion of a record is aimed.
pub(crate) type At<'a> = (&'a str, Option<i64>);

/// The resource, or `NotFound` naming what and which.
pub(crate) fn found<T>(resource: Option<T>, what: &str, id: &str) -> Result<T> {
    resource.ok_or_else(|| Error::not_found(what, id))
}

/// `VersionMismatch` unless the caller's expected version (if any) is the current one.
pub(crate) fn check_version(expected: Option<i64>, current: i64) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(Error::VersionMismatch { current }),
        _ => Ok(()),
    }
}

/// The record `id`, or `NotFound`.
pub(crate) async fn load<T: Record>(conn: &mut Conn, id: &str) -> Result<T> {
    found(T::get(conn, id).await?, T::WHAT, id)
}

/// The record `id` at the version the caller expects (if it says): where every change of
/// a record starts.
pub(crate) async fn load_at<T: Record>(
    conn: &mut Conn,
    id: &str,
    expected: Option<i64>,
) -> Result<T> {
    let record: T = load(conn, id).await?;
    check_version(expected, record.version())?;
    Ok(record)
}

/// Reads one record.
pub(crate) async fn get<T: Record>(store: &Store, id: &str) -> Result<T> {
    let mut conn = store.read().await?;
    load(&mut conn, id).await
}

/// Stores `after` (the next version of `before`) and records the change as `action`.
pub(crate) async fn update_in<T: Record>(
    conn: &mut Conn,
    change: Change<'_>,
    before: &T,
    after: &T,
    action: Action,
) -> Result<()> {
    T::update(conn, after).await?;
    change
        .record(conn, action, after.id(), Some(before), Some(after))
        .await
}

/// Deletes `record` and records it as `action`.
pub(crate) async fn delete_in<T: Record>(
    conn: &mut Conn,
    change: Change<'_>,
    record: &T,
    action: Action,
) -> Result<()> {
    T::delete(conn, record.id()).await?;
    change
        .record(conn, action, record.id(), Some(record), None)
        .await
}

/// The whole of a deletion: loads `id` at the expected version; `steps` refuses it when
/// something still uses the record, or does what goes with it (dependents deleted, rulesets
/// bumped, the key ring told) in the same transaction; then the record is deleted,
/// recorded as `action`, and the change committed.
pub(crate) async fn remove<T: Record>(
    store: &Store,
    by: &By,
    at: At<'_>,
    action: Action,
    steps: impl AsyncFnOnce(&mut WriteTx<'_>, &T) -> Result<()>,
) -> Result<()> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let record: T = load_at(tx.conn(), id, expected).await?;
    steps(&mut tx, &record).await?;
    delete_in(tx.conn(), by.because(None), &record, action).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `after` is `before` but for the version and timestamp that every change stamps:
/// a change that changes nothing, which stores nothing and answers the current state.
pub(crate) fn unchanged<T: Record>(before: &T, after: &T) -> bool {
    let content = |record: &T| {
        let mut value = serde_json::to_value(record).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("version");
            fields.remove("updated_at");
        }
        value
    };
    content(before) == content(after)
}

/// The whole of a change that needs nothing but the record itself: loads `id` at the
/// expected version, makes the new version with `edit` (which checks its input), stores
/// it, records it as `action` and commits.
pub(crate) async fn edit<T: Record>(
    store: &Store,
    change: Change<'_>,
    at: At<'_>,
    action: Action,
    edit: impl FnOnce(&T) -> Result<T> + Send,
) -> Result<T> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let before = load_at(tx.conn(), id, expected).await?;
    let after = edit(&before)?;
    if unchanged(&before, &after) {
        return Ok(before);
    }
    update_in(tx.conn(), change, &before, &after, action).await?;
    tx.commit().await?;
    Ok(after)
}
