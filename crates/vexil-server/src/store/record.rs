//! Records people change by id, each with a version that every change increments: the
//! reads, writes and deletion that every change of such a record needs, in one shape, so
//! that the domain layer can load, check, store and delete any of them the same way.

use std::future::Future;

use serde::Serialize;

use super::{Conn, StoreResult, now_rfc3339};
use super::{environments, flags, organizations, projects, segments, templates, webhooks};

/// A record with an id and a version (organizations, projects, environments, flags,
/// segments, webhooks, flag templates).
pub(crate) trait Record: Serialize + Clone + Send + Sync + Sized {
    /// What a person calls it ("organization"), in messages.
    const WHAT: &'static str;
    fn id(&self) -> &str;
    fn version(&self) -> i64;
    /// A copy at the next version, stamped now: where every change starts.
    fn next_version(&self) -> Self;
    fn get<'a>(
        conn: &'a mut Conn,
        id: &'a str,
    ) -> impl Future<Output = StoreResult<Option<Self>>> + Send + 'a;
    /// Stores the record's editable fields, version and `updated_at`.
    fn update<'a>(
        conn: &'a mut Conn,
        record: &'a Self,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'a;
    /// Deletes the record; rows that depend on it go with it (ON DELETE CASCADE).
    fn delete<'a>(
        conn: &'a mut Conn,
        id: &'a str,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'a;
}

macro_rules! records {
    ($($ty:ty => $module:ident, $what:literal, $table:literal;)*) => {$(
        impl Record for $ty {
            const WHAT: &'static str = $what;

            fn id(&self) -> &str {
                &self.id
            }

            fn version(&self) -> i64 {
                self.version
            }

            fn next_version(&self) -> Self {
                Self {
                    version: self.version + 1,
                    updated_at: now_rfc3339(),
                    ..self.clone()
                }
            }

            fn get<'a>(
                conn: &'a mut Conn,
                id: &'a str,
            ) -> impl Future<Output = StoreResult<Option<Self>>> + Send + 'a {
                $module::get(conn, id)
            }

            fn update<'a>(
                conn: &'a mut Conn,
                record: &'a Self,
            ) -> impl Future<Output = StoreResult<()>> + Send + 'a {
                $module::update(conn, record)
            }

            async fn delete(conn: &mut Conn, id: &str) -> StoreResult<()> {
                sqlx::query(concat!("DELETE FROM ", $table, " WHERE id = $1"))
                    .bind(id)
                    .execute(conn)
                    .await?;
                Ok(())
            }
        }
    )*};
}

records! {
    organizations::Organization => organizations, "organization", "organizations";
    projects::Project => projects, "project", "projects";
    environments::Environment => environments, "environment", "environments";
    flags::Flag => flags, "flag", "flags";
    segments::Segment => segments, "segment", "segments";
    webhooks::Webhook => webhooks, "webhook", "webhooks";
    templates::Template => templates, "flag template", "flag_templates";
}
