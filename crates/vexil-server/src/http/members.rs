//! Organization membership: `GET/POST /api/v1/organizations/{id}/members`,
//! `PATCH/DELETE /api/v1/organizations/{id}/members/{user_id}`. Admins manage editors,
//! viewers and admins; only owners grant, change or remove the owner role, and the last
//! owner cannot be removed or demoted. Adding an unknown email creates the user, with a
//! one-time password in the response (or the password given).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Page, Pagination, Query, RequestMeta};
use super::patch::{check_comment, check_name};
use super::users::normalize_email;
use crate::access::{Principal, Role, forbidden};
use crate::bootstrap::{add_membership, insert_user};
use crate::credentials;
use crate::store::{Store, audit, now_rfc3339, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations/{id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/api/v1/organizations/{id}/members/{user_id}",
            patch(update_member).delete(remove_member),
        )
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/members", tag = "members", params(("id" = String, Path), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)), responses((status = 200, description = "A page of members `{user_id, email, name, role, created_at, updated_at}`"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Unknown organization (or not yours)")))]
pub(crate) async fn list_members(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<users::Member>>> {
    let p = p.validate()?;
    let mut conn = store.read().await?;
    let (items, total) = users::list_members(&mut conn, &id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMember {
    email: String,
    role: String,
    /// For a new user (default: the email's local part).
    name: Option<String>,
    /// For a new user (default: a generated one-time password, returned once).
    password: Option<String>,
    comment: Option<String>,
}

/// Owners alone may touch the owner role; the caller's role is checked by the layer.
async fn caller_role(
    conn: &mut sqlx::AnyConnection,
    principal: &Principal,
    org: &str,
) -> ApiResult<Role> {
    principal
        .role_in(conn, org)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", org))
}

fn require_owner_for(role: Role, caller: Role) -> ApiResult<()> {
    if role == Role::Owner && caller < Role::Owner {
        return Err(forbidden(caller, Role::Owner));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/members", tag = "members", params(("id" = String, Path)), request_body(content = Object, description = "`{email, role, name?, password?, comment?}`: an existing user is added; an unknown email creates the user"), responses((status = 201, description = "The member; for a newly created user without a given password also `password` (one-time, shown only here)"), (status = 400, description = "Invalid input"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Needs admin (owner to add an owner)"), (status = 404, description = "Unknown organization (or not yours)"), (status = 409, description = "Already a member")))]
pub(crate) async fn add_member(
    State(store): State<Arc<Store>>,
    Path(org): Path<String>,
    principal: Principal,
    meta: RequestMeta,
    Json(body): Json<AddMember>,
) -> ApiResult<Response> {
    let email = normalize_email("email", &body.email)?;
    let role = Role::parse_field("role", &body.role)?;
    let may_create_users = !matches!(principal.subject, crate::access::Subject::Service { .. });
    check_comment(body.comment.as_deref())?;
    if let Some(name) = &body.name {
        check_name("name", name)?;
    }
    if let Some(password) = &body.password {
        credentials::check_password_strength(password)
            .map_err(|m| ApiError::invalid_field("password", m))?;
    }
    // Hashing is slow: done before taking the write lock, used only if the user is new.
    let generated = body.password.is_none().then(credentials::random_password);
    let password = body
        .password
        .clone()
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let hash = tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;
    let mut tx = store.write().await?;
    let caller = caller_role(tx.conn(), &principal, &org).await?;
    require_owner_for(role, caller)?;
    let (user, created) = match users::find_by_email(tx.conn(), &email).await? {
        Some((user, _)) => (user, false),
        None if !may_create_users => {
            return Err(ApiError::Forbidden(
                "a service token adds existing users only; people are created from a session or by an operator".into(),
            ));
        }
        None => {
            let name = body
                .name
                .clone()
                .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let comment = body.comment.as_deref();
            let user = insert_user(
                tx.conn(),
                &email,
                &name,
                &hash,
                &principal.actor,
                &meta,
                comment,
            )
            .await?;
            users::mark_password_set_by_other(tx.conn(), &user.id).await?;
            (user, true)
        }
    };
    // An account whose password its creator knows could be anyone's: it joins another
    // organization only once its user has chosen their own password.
    if !created
        && !principal.is_instance()
        && users::password_set_by_other(tx.conn(), &user.id).await?
    {
        return Err(ApiError::conflict(
            format!(
                "{email} has not yet chosen their own password; they must log in and change it before joining another organization"
            ),
            json!({"user_id": user.id}),
        ));
    }
    if users::role_in(tx.conn(), &user.id, &org).await?.is_some() {
        return Err(ApiError::conflict(
            format!("{email} is already a member"),
            json!({"user_id": user.id}),
        ));
    }
    let comment = body.comment.as_deref();
    add_membership(
        tx.conn(),
        &org,
        &user,
        role,
        &principal.actor,
        &meta,
        comment,
    )
    .await?;
    let member = users::get_member(tx.conn(), &org, &user.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("membership vanished")))?;
    tx.commit().await?;
    let mut out = json!(member);
    if created && let (Some(p), Some(map)) = (generated, out.as_object_mut()) {
        map.insert("password".into(), json!(p));
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateMember {
    role: String,
    comment: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "members", params(("id" = String, Path), ("user_id" = String, Path)), request_body(content = Object, description = "`{role, comment?}`"), responses((status = 200, description = "The member with the new role"), (status = 400, description = "Invalid role"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Needs admin (owner when an owner is involved)"), (status = 404, description = "Unknown organization or member"), (status = 409, description = "Would leave the organization without an owner")))]
pub(crate) async fn update_member(
    State(store): State<Arc<Store>>,
    Path((org, user_id)): Path<(String, String)>,
    principal: Principal,
    meta: RequestMeta,
    Json(body): Json<UpdateMember>,
) -> ApiResult<Response> {
    let role = Role::parse_field("role", &body.role)?;
    check_comment(body.comment.as_deref())?;
    let mut tx = store.write().await?;
    let caller = caller_role(tx.conn(), &principal, &org).await?;
    let before = users::get_member(tx.conn(), &org, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member", &user_id))?;
    let old = Role::parse(&before.role).unwrap_or(Role::Viewer);
    require_owner_for(old, caller)?;
    require_owner_for(role, caller)?;
    if old == Role::Owner && role != Role::Owner && users::count_owners(tx.conn(), &org).await? <= 1
    {
        return Err(ApiError::conflict(
            "the organization's last owner cannot be demoted; make someone else owner first",
            json!({"user_id": user_id}),
        ));
    }
    users::set_role(tx.conn(), &org, &user_id, role.as_str(), &now_rfc3339()).await?;
    let after = users::get_member(tx.conn(), &org, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member", &user_id))?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: "member.update",
            resource_type: "member",
            resource_id: &user_id,
            before: Some(json!(before)),
            after: Some(json!(after)),
            comment: body.comment.as_deref(),
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after).into_response())
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "members", params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204, description = "Removed: the user's sessions and personal tokens no longer reach this organization"), (status = 401, description = "Missing or invalid credentials"), (status = 403, description = "Needs admin (owner to remove an owner)"), (status = 404, description = "Unknown organization or member"), (status = 409, description = "The last owner")))]
pub(crate) async fn remove_member(
    State(store): State<Arc<Store>>,
    Path((org, user_id)): Path<(String, String)>,
    principal: Principal,
    meta: RequestMeta,
) -> ApiResult<StatusCode> {
    let mut tx = store.write().await?;
    let caller = caller_role(tx.conn(), &principal, &org).await?;
    let before = users::get_member(tx.conn(), &org, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member", &user_id))?;
    let old = Role::parse(&before.role).unwrap_or(Role::Viewer);
    require_owner_for(old, caller)?;
    if old == Role::Owner && users::count_owners(tx.conn(), &org).await? <= 1 {
        return Err(ApiError::conflict(
            "the organization's last owner cannot be removed",
            json!({"user_id": user_id}),
        ));
    }
    users::delete_membership(tx.conn(), &org, &user_id).await?;
    audit::append(
        tx.conn(),
        audit::NewEntry {
            actor: &principal.actor,
            action: "member.remove",
            resource_type: "member",
            resource_id: &user_id,
            before: Some(json!(before)),
            after: None,
            comment: None,
            meta: &meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
