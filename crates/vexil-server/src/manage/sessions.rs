//! Sign-in: checking an email and password (failed attempts are audited), opening a
//! session (audited as a login) and ending one. Cookies, CSRF and rate limits are the
//! HTTP layer's.

use std::time::Duration;

use serde_json::json;

use super::{By, Error, Result};
use crate::audit::{Action, Actor, RequestMeta, hash_secret};
use crate::credentials;
use crate::store::{Store, new_id, now_ms, now_rfc3339, sessions, users};

/// The user whose email and password these are, or `BadCredentials` (audited as
/// `user.login_failed`). An unknown account costs as much as a wrong password: no timing
/// tells them apart.
pub(crate) async fn check_password(
    store: &Store,
    meta: &RequestMeta,
    email: &str,
    password: String,
) -> Result<users::User> {
    let found = {
        let mut conn = store.read().await?;
        users::find_by_email(&mut conn, email).await?
    };
    let stored = found
        .as_ref()
        .map_or_else(|| credentials::dummy_hash().to_owned(), |(_, h)| h.clone());
    let matches =
        tokio::task::spawn_blocking(move || credentials::verify_password(&password, &stored))
            .await?;
    match found {
        Some((user, _)) if matches => Ok(user),
        found => {
            let (id, name) = found.map_or_else(
                || ("anonymous".to_owned(), email.to_owned()),
                |(u, _)| (u.id, u.email),
            );
            let by = By {
                actor: Actor {
                    id: id.clone(),
                    name,
                },
                meta: meta.clone(),
            };
            let mut tx = store.write().await?;
            let after = json!({"email": email});
            by.because(None)
                .record_json(tx.conn(), Action::UserLoginFailed, &id, None, Some(after))
                .await?;
            tx.commit().await?;
            Err(Error::BadCredentials)
        }
    }
}

/// A session just opened: its record and its secret (the cookie's value, shown only now).
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) session: sessions::Session,
    pub(crate) secret: String,
    pub(crate) organizations: Vec<users::UserOrganization>,
}

/// Opens a session for `user` lasting at most `lifetime`, audited as a login by `method`.
pub(crate) async fn open(
    store: &Store,
    user: &users::User,
    meta: &RequestMeta,
    method: &str,
    lifetime: Duration,
) -> Result<Opened> {
    let secret = credentials::random_secret("");
    let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 4);
    let session = sessions::Session {
        id: new_id(),
        user_id: user.id.clone(),
        created_at: now_rfc3339(),
        last_seen_at: now_rfc3339(),
        expires_at: vexil_core::time::format_rfc3339(now_ms().saturating_add(lifetime_ms)),
    };
    let mut tx = store.write().await?;
    let (ip, agent) = (meta.ip.as_deref(), meta.user_agent.as_deref());
    sessions::insert(tx.conn(), &session, &hash_secret(&secret), ip, agent).await?;
    let by = By {
        actor: Actor {
            id: user.id.clone(),
            name: user.email.clone(),
        },
        meta: meta.clone(),
    };
    let after = json!({"session_id": session.id, "method": method});
    by.because(None)
        .record_json(tx.conn(), Action::UserLogin, &user.id, None, Some(after))
        .await?;
    let organizations = users::organizations_of(tx.conn(), &user.id).await?;
    tx.commit().await?;
    Ok(Opened {
        session,
        secret,
        organizations,
    })
}

/// Ends a session, audited as a logout.
pub(crate) async fn close(store: &Store, by: &By, session_id: &str) -> Result<()> {
    let mut tx = store.write().await?;
    sessions::delete(tx.conn(), session_id).await?;
    by.because(None)
        .record_json(tx.conn(), Action::UserLogout, &by.actor.id, None, None)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// What `GET /api/v1/auth/session` tells about a user: the account and organizations.
pub(crate) async fn user_and_organizations(
    store: &Store,
    user_id: &str,
) -> Result<(users::User, Vec<users::UserOrganization>)> {
    let mut conn = store.read().await?;
    let user = users::get(&mut conn, user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let organizations = users::organizations_of(&mut conn, user_id).await?;
    Ok((user, organizations))
}
