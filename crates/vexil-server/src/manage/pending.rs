//! Release control: configuration changes held until a time (scheduled changes) or until
//! another member approves them (change requests). A held change is a merge patch of one
//! flag's configuration in one environment; it is validated when it is made and again when
//! it is applied, and applied through [`flag_configs::commit_in`] like any other change.
//! [`apply_due`] is the scheduler job's work: it applies what is due, exactly once per
//! cluster (inside the cluster-wide write transaction), as the scheduler, on behalf of the
//! author, whose role is checked again then.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::access::at_least;
use super::fields::{Patch, check_comment, check_expiry};
use super::flag_configs::{self, check_in, commit_in, patched};
use super::{By, Error, Result, found};
use crate::access::{Principal, Role, Subject, to_change_environment};
use crate::audit::{Action, Actor};
use crate::store::pending::{self, Filter, Kind, PendingChange, Status};
use crate::store::{Conn, Store, environments, new_id, now_rfc3339, tokens};

/// Who made a held change, with what is needed to check their role again when it is
/// applied (stored as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Author {
    actor: Actor,
    /// `user`, `service` or `instance`.
    subject: String,
    organization_id: Option<String>,
    /// The most the credential could do (a personal or service token's role).
    cap: Role,
    token_id: Option<String>,
}

impl Author {
    fn of(principal: &Principal) -> Author {
        let (subject, organization_id) = match &principal.subject {
            Subject::User { .. } => ("user", None),
            Subject::Service { organization_id } => ("service", Some(organization_id.clone())),
            Subject::Instance => ("instance", None),
        };
        Author {
            actor: principal.actor.clone(),
            subject: subject.to_owned(),
            organization_id,
            cap: principal.cap,
            token_id: principal.token_id.clone(),
        }
    }

    /// Whether the author may still make this change (`need` in `organization_id`): the
    /// credential is live and the role is still held. Forbidden, saying why, if not.
    async fn still_may(&self, conn: &mut Conn, organization_id: &str, need: Role) -> Result<()> {
        let name = &self.actor.name;
        if let Some(token_id) = &self.token_id {
            let now = now_rfc3339();
            let live = tokens::get(conn, token_id).await?.is_some_and(|t| {
                t.revoked_at.is_none() && t.expires_at.is_none_or(|at| at.as_str() > now.as_str())
            });
            if !live {
                return Err(Error::Forbidden(format!(
                    "the token {name} made it with has been revoked or has expired"
                )));
            }
        }
        let subject = match self.subject.as_str() {
            "user" => Subject::User {
                user_id: self.actor.id.clone(),
            },
            "service" => Subject::Service {
                organization_id: self.organization_id.clone().unwrap_or_default(),
            },
            _ => Subject::Instance,
        };
        let principal = Principal {
            actor: self.actor.clone(),
            subject,
            cap: self.cap,
            token_id: None,
            session_id: None,
        };
        match principal.role_in(conn, organization_id).await? {
            None => Err(Error::Forbidden(format!(
                "{name} is no longer a member of the organization"
            ))),
            Some(role) => at_least(role, need).map_err(|_| {
                Error::Forbidden(format!(
                    "{name} no longer holds the {} role this change needs",
                    need.as_str()
                ))
            }),
        }
    }
}

/// A review of a change request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Review {
    pub(crate) reviewer: Actor,
    pub(crate) decision: Decision,
    pub(crate) comment: Option<String>,
    pub(crate) at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    Approve,
    Reject,
}

/// A scheduled change as served.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000a", "flag_id": "0190e0a4-0000-7000-8000-000000000005",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "execute_at": "2026-12-24T09:00:00.000Z",
    "patch": {"enabled": true}, "comment": "holiday launch", "created_by": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "status": "pending", "created_at": "2026-12-01T10:00:00.000Z"}))]
pub(crate) struct ScheduledChange {
    pub(crate) id: String,
    pub(crate) flag_id: String,
    pub(crate) environment_id: String,
    pub(crate) execute_at: String,
    #[schema(value_type = Object)]
    pub(crate) patch: Value,
    pub(crate) comment: Option<String>,
    pub(crate) created_by: Actor,
    pub(crate) status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) applied_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) created_at: String,
}

/// A change request as served.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000b", "flag_id": "0190e0a4-0000-7000-8000-000000000005",
    "environment_id": "0190e0a4-0000-7000-8000-000000000004", "status": "approved",
    "author": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"}, "base_version": 3, "approved_version": 3,
    "patch": {"fallthrough": {"rollout": [{"variation": "on", "weight": 10}, {"variation": "off", "weight": 90}]}},
    "comment": "10% of production", "execute_at": null,
    "reviews": [{"reviewer": {"id": "0190e0a4-0000-7000-8000-000000000007", "name": "grace@example.com"}, "decision": "approve", "comment": "looks good", "at": "2026-12-01T10:05:00.000Z"}],
    "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-01T10:05:00.000Z"}))]
pub(crate) struct ChangeRequest {
    pub(crate) id: String,
    pub(crate) flag_id: String,
    pub(crate) environment_id: String,
    pub(crate) status: Status,
    pub(crate) author: Actor,
    /// The configuration version the patch was written against.
    pub(crate) base_version: i64,
    /// The configuration version the approval was given at; a later change makes the
    /// approval stale.
    pub(crate) approved_version: Option<i64>,
    #[schema(value_type = Object)]
    pub(crate) patch: Value,
    pub(crate) comment: Option<String>,
    pub(crate) execute_at: Option<String>,
    pub(crate) reviews: Vec<Review>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) applied_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// The served form of one kind of held change.
pub(crate) trait View: Serialize + Sized {
    const KIND: Kind;
    /// What a person calls it, in messages.
    const WHAT: &'static str;
    fn of(row: &PendingChange) -> Result<Self>;
}

fn author_of(row: &PendingChange) -> Result<Author> {
    Ok(serde_json::from_str(&row.author)?)
}

fn reviews_of(row: &PendingChange) -> Result<Vec<Review>> {
    Ok(serde_json::from_str(&row.reviews)?)
}

impl View for ScheduledChange {
    const KIND: Kind = Kind::Scheduled;
    const WHAT: &'static str = "scheduled change";

    fn of(row: &PendingChange) -> Result<Self> {
        Ok(ScheduledChange {
            id: row.id.clone(),
            flag_id: row.flag_id.clone(),
            environment_id: row.environment_id.clone(),
            execute_at: row.execute_at.clone().unwrap_or_default(),
            patch: serde_json::from_str(&row.patch)?,
            comment: row.comment.clone(),
            created_by: author_of(row)?.actor,
            status: row.status,
            applied_at: row.applied_at.clone(),
            error: row.error.clone(),
            created_at: row.created_at.clone(),
        })
    }
}

impl View for ChangeRequest {
    const KIND: Kind = Kind::Request;
    const WHAT: &'static str = "change request";

    fn of(row: &PendingChange) -> Result<Self> {
        Ok(ChangeRequest {
            id: row.id.clone(),
            flag_id: row.flag_id.clone(),
            environment_id: row.environment_id.clone(),
            status: row.status,
            author: author_of(row)?.actor,
            base_version: row.base_version,
            approved_version: row.approved_version,
            patch: serde_json::from_str(&row.patch)?,
            comment: row.comment.clone(),
            execute_at: row.execute_at.clone(),
            reviews: reviews_of(row)?,
            applied_at: row.applied_at.clone(),
            error: row.error.clone(),
            created_at: row.created_at.clone(),
            updated_at: row.updated_at.clone(),
        })
    }
}

/// A scheduled change or a change request to make (`execute_at` is required for the
/// first, optional for the second).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"execute_at": "2026-12-24T09:00:00Z", "patch": {"enabled": true}, "comment": "holiday launch"}))]
pub(crate) struct NewPending {
    /// RFC 3339, in the future.
    pub(crate) execute_at: Option<String>,
    /// A merge patch of the configuration, as for `PATCH …/config` (without `comment`).
    #[schema(value_type = Object)]
    pub(crate) patch: Map<String, Value>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// The body of an approval or a rejection.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"comment": "looks right"}))]
pub(crate) struct ReviewInput {
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// The latest time a change may be held for.
const MAX_AHEAD_MS: i64 = 5 * 366 * 24 * 3600 * 1000;

/// Schedules `input.patch` for `execute_at` (validated now, and again then).
pub(crate) async fn schedule(
    store: &Store,
    principal: &Principal,
    by: &By,
    at: (&str, &str),
    input: NewPending,
) -> Result<ScheduledChange> {
    let Some(execute_at) = input.execute_at.as_deref() else {
        return Err(Error::invalid_field("execute_at", "is required"));
    };
    let execute_at = check_time(execute_at)?;
    let row = hold(
        store,
        principal,
        by,
        at,
        Kind::Scheduled,
        input,
        Some(execute_at),
    )
    .await?;
    ScheduledChange::of(&row)
}

/// Proposes `input.patch` for approval (applied by hand once approved, or at
/// `execute_at` if given).
pub(crate) async fn propose(
    store: &Store,
    principal: &Principal,
    by: &By,
    at: (&str, &str),
    input: NewPending,
) -> Result<ChangeRequest> {
    let execute_at = input.execute_at.as_deref().map(check_time).transpose()?;
    let row = hold(store, principal, by, at, Kind::Request, input, execute_at).await?;
    ChangeRequest::of(&row)
}

fn check_time(text: &str) -> Result<String> {
    let at = check_expiry("execute_at", text)?;
    let ms = vexil_core::time::parse_rfc3339(&at).unwrap_or_default();
    if ms - crate::store::now_ms() > MAX_AHEAD_MS {
        return Err(Error::invalid_field("execute_at", "must be within 5 years"));
    }
    Ok(at)
}

/// Validates the patch against the configuration as it is and stores the held change.
async fn hold(
    store: &Store,
    principal: &Principal,
    by: &By,
    (flag_id, env_id): (&str, &str),
    kind: Kind,
    input: NewPending,
    execute_at: Option<String>,
) -> Result<PendingChange> {
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    let (flag, config) = flag_configs::load(tx.conn(), flag_id, env_id).await?;
    if kind == Kind::Scheduled {
        // A scheduled change must not be a way around four-eyes approval.
        flag_configs::refuse_unapproved(tx.conn(), env_id).await?;
    }
    let patch = Patch {
        changes: input.patch.clone(),
        comment: None,
    };
    let proposed = patched(&config, &patch).map_err(in_patch)?;
    check_in(tx.conn(), &flag, &config, &proposed)
        .await
        .map_err(in_patch)?;
    let env = found(
        environments::get(tx.conn(), env_id).await?,
        "environment",
        env_id,
    )?;
    let organization_id = by
        .meta
        .organization_id
        .clone()
        .ok_or_else(|| Error::internal("route without a resolved organization"))?;
    let now = now_rfc3339();
    let row = PendingChange {
        id: new_id(),
        kind,
        flag_id: flag.id.clone(),
        environment_id: env.id.clone(),
        project_id: env.project_id.clone(),
        organization_id,
        patch: Value::Object(input.patch).to_string(),
        comment: input.comment,
        execute_at,
        status: match kind {
            Kind::Scheduled => Status::Pending,
            Kind::Request => Status::Open,
        },
        author: serde_json::to_string(&Author::of(principal))?,
        author_id: principal.actor.id.clone(),
        base_version: config.version,
        approved_version: None,
        reviews: "[]".into(),
        applied_at: None,
        error: None,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    pending::insert(tx.conn(), &row).await?;
    let action = match kind {
        Kind::Scheduled => Action::ScheduledChangeCreate,
        Kind::Request => Action::ChangeRequestCreate,
    };
    record(
        tx.conn(),
        by.because(row.comment.as_deref()),
        action,
        &row,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Problems of the patch are reported under `patch.` (the body's field).
fn in_patch(e: Error) -> Error {
    match e {
        Error::Invalid { message, fields } => Error::Invalid {
            message: format!("patch: {message}"),
            fields: fields
                .into_iter()
                .map(|(k, v)| (format!("patch.{k}"), v))
                .collect(),
        },
        other => other,
    }
}

/// Records a step of a held change: the change as it is after the step (and before, for
/// steps after the first).
async fn record(
    conn: &mut Conn,
    change: super::Change<'_>,
    action: Action,
    after: &PendingChange,
    before: Option<&PendingChange>,
) -> Result<()> {
    let view = |row: &PendingChange| -> Result<Value> {
        Ok(match row.kind {
            Kind::Scheduled => serde_json::to_value(ScheduledChange::of(row)?)?,
            Kind::Request => serde_json::to_value(ChangeRequest::of(row)?)?,
        })
    };
    let before = before.map(view).transpose()?;
    change
        .record_json(conn, action, &after.id, before, Some(view(after)?))
        .await
}

/// The held change `id` of kind `T`, or `NotFound`.
async fn load_row<T: View>(conn: &mut Conn, id: &str) -> Result<PendingChange> {
    match pending::get(conn, id).await? {
        Some(row) if row.kind == T::KIND => Ok(row),
        _ => Err(Error::not_found(T::WHAT, id)),
    }
}

pub(crate) async fn get<T: View>(store: &Store, id: &str) -> Result<T> {
    let mut conn = store.read().await?;
    T::of(&load_row::<T>(&mut conn, id).await?)
}

/// Which held changes a listing shows: those of one flag in one environment, or of a
/// project (optionally one environment), optionally with one status.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listing<'a> {
    Flag(&'a str, &'a str),
    Project(&'a str, Option<&'a str>),
}

/// `status` as given in a query (`None`: any).
pub(crate) fn parse_status(status: Option<&str>) -> Result<Option<Status>> {
    status
        .filter(|s| !s.is_empty())
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                Error::invalid_field(
                    "status",
                    "must be one of pending, open, approved, applied, failed, rejected, cancelled",
                )
            })
        })
        .transpose()
}

pub(crate) async fn list<T: View>(
    store: &Store,
    listing: Listing<'_>,
    status: Option<Status>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<T>, i64)> {
    let mut conn = store.read().await?;
    let statuses: Vec<Status> = status.into_iter().collect();
    let mut filter = Filter {
        kind: Some(T::KIND),
        statuses: &statuses,
        ..Filter::default()
    };
    match listing {
        Listing::Flag(flag_id, env_id) => {
            flag_configs::load(&mut conn, flag_id, env_id).await?;
            filter.flag_id = Some(flag_id);
            filter.environment_id = Some(env_id);
        }
        Listing::Project(project_id, env_id) => {
            filter.project_id = Some(project_id);
            filter.environment_id = env_id;
        }
    }
    let (rows, total) = pending::list(&mut conn, &filter, limit, offset).await?;
    let items = rows.iter().map(T::of).collect::<Result<Vec<T>>>()?;
    Ok((items, total))
}

/// The held changes of a flag in one environment that may still happen (for its page).
pub(crate) async fn live_for(
    store: &Store,
    flag_id: &str,
    env_id: &str,
) -> Result<(Vec<ScheduledChange>, Vec<ChangeRequest>)> {
    let mut conn = store.read().await?;
    let live = [Status::Pending, Status::Open, Status::Approved];
    let filter = Filter {
        flag_id: Some(flag_id),
        environment_id: Some(env_id),
        statuses: &live,
        ..Filter::default()
    };
    let (rows, _) = pending::list(&mut conn, &filter, 200, 0).await?;
    let (mut scheduled, mut requests) = (Vec::new(), Vec::new());
    for row in &rows {
        match row.kind {
            Kind::Scheduled => scheduled.push(ScheduledChange::of(row)?),
            Kind::Request => requests.push(ChangeRequest::of(row)?),
        }
    }
    Ok((scheduled, requests))
}

/// Cancels a held change that may still happen: its author may, and so may anyone with
/// the role the change itself needs.
pub(crate) async fn cancel<T: View>(
    store: &Store,
    principal: &Principal,
    by: &By,
    id: &str,
) -> Result<T> {
    let mut tx = store.write().await?;
    let before = load_row::<T>(tx.conn(), id).await?;
    if !before.status.is_live() {
        return Err(settled(&before, "cancelled"));
    }
    if principal.actor.id != before.author_id {
        let need = role_to_change(tx.conn(), &before.environment_id).await?;
        principal
            .require(tx.conn(), &before.organization_id, need, || {
                Error::not_found(T::WHAT, id)
            })
            .await?;
    }
    let after = PendingChange {
        status: Status::Cancelled,
        ..next(&before)
    };
    pending::update(tx.conn(), &after).await?;
    let action = match T::KIND {
        Kind::Scheduled => Action::ScheduledChangeCancel,
        Kind::Request => Action::ChangeRequestCancel,
    };
    record(tx.conn(), by.because(None), action, &after, Some(&before)).await?;
    tx.commit().await?;
    T::of(&after)
}

/// The role needed to change configurations in an environment.
async fn role_to_change(conn: &mut Conn, env_id: &str) -> Result<Role> {
    let env = found(
        environments::get(conn, env_id).await?,
        "environment",
        env_id,
    )?;
    Ok(to_change_environment(env.protected))
}

fn next(row: &PendingChange) -> PendingChange {
    PendingChange {
        version: row.version + 1,
        updated_at: now_rfc3339(),
        ..row.clone()
    }
}

fn settled(row: &PendingChange, verb: &str) -> Error {
    Error::conflict(
        format!(
            "this change is {}; it can no longer be {verb}",
            row.status.as_str()
        ),
        json!({"status": row.status}),
    )
}

/// Approves or rejects a change request, as a member other than its author (the route
/// asks for the role the change needs).
pub(crate) async fn review(
    store: &Store,
    by: &By,
    id: &str,
    decision: Decision,
    input: ReviewInput,
) -> Result<ChangeRequest> {
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    let before = load_row::<ChangeRequest>(tx.conn(), id).await?;
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    if !matches!(before.status, Status::Open | Status::Approved) {
        return Err(settled(&before, verb));
    }
    if by.actor.id == before.author_id {
        return Err(Error::Forbidden(format!(
            "you proposed this change: another member must review it (you may cancel it); \
             it cannot be {verb} by its author"
        )));
    }
    let (_, config) =
        flag_configs::load(tx.conn(), &before.flag_id, &before.environment_id).await?;
    let mut reviews = reviews_of(&before)?;
    // Approving again what one has approved at this version changes nothing.
    let mine = |r: &Review| r.decision == Decision::Approve && r.reviewer.id == by.actor.id;
    if decision == Decision::Approve
        && before.approved_version == Some(config.version)
        && reviews.iter().any(mine)
    {
        return ChangeRequest::of(&before);
    }
    reviews.push(Review {
        reviewer: by.actor.clone(),
        decision,
        comment: input.comment.clone(),
        at: now_rfc3339(),
    });
    let after = match decision {
        Decision::Approve => PendingChange {
            status: Status::Approved,
            approved_version: Some(config.version),
            error: None,
            ..next(&before)
        },
        Decision::Reject => PendingChange {
            status: Status::Rejected,
            ..next(&before)
        },
    };
    let after = PendingChange {
        reviews: serde_json::to_string(&reviews)?,
        ..after
    };
    pending::update(tx.conn(), &after).await?;
    let action = match decision {
        Decision::Approve => Action::ChangeRequestApprove,
        Decision::Reject => Action::ChangeRequestReject,
    };
    let change = by.because(input.comment.as_deref());
    record(tx.conn(), change, action, &after, Some(&before)).await?;
    tx.commit().await?;
    ChangeRequest::of(&after)
}

/// Applies an approved change request now, by its author or one of its approvers. When
/// the configuration changed after the approval, the approval is void: the request is open
/// again and the answer is `stale`.
pub(crate) async fn apply(store: &Store, by: &By, id: &str) -> Result<ChangeRequest> {
    let mut tx = store.write().await?;
    let before = load_row::<ChangeRequest>(tx.conn(), id).await?;
    if before.status != Status::Approved {
        let message = match before.status {
            Status::Open => "this change request is not approved yet".to_owned(),
            _ => format!(
                "this change request is {}; it can no longer be applied",
                before.status.as_str()
            ),
        };
        return Err(Error::conflict(message, json!({"status": before.status})));
    }
    let approvers = reviews_of(&before)?;
    let may = by.actor.id == before.author_id
        || approvers
            .iter()
            .any(|r| r.decision == Decision::Approve && r.reviewer.id == by.actor.id);
    if !may {
        return Err(Error::Forbidden(
            "an approved change request is applied by its author or one of its approvers".into(),
        ));
    }
    let outcome = apply_in(tx.conn(), &before, by).await?;
    let stale = matches!(&outcome, Err(Error::Refused { code: "stale", .. }));
    let after = settle(tx.conn(), &before, outcome, by).await?;
    tx.commit().await?;
    if stale {
        return Err(stale_error(&after));
    }
    match after.status {
        Status::Failed => Err(Error::conflict(
            format!(
                "the change no longer applies: {}",
                after.error.clone().unwrap_or_default()
            ),
            json!({"status": after.status}),
        )),
        _ => ChangeRequest::of(&after),
    }
}

fn stale_error(row: &PendingChange) -> Error {
    Error::Refused {
        code: "stale",
        message: row.error.clone().unwrap_or_default(),
        details: json!({"status": row.status}),
    }
}

/// Applies every held change that is due (scheduled ones at their time; approved change
/// requests with a time), as the scheduler, in one write transaction, so that with several
/// nodes each is applied exactly once. Returns how many were settled.
pub(crate) async fn apply_due(store: &Store) -> Result<usize> {
    let now = now_rfc3339();
    {
        // A cheap read first: the write lock is taken only when something is due.
        let mut conn = store.read().await?;
        if !pending::any_due(&mut conn, &now).await? {
            return Ok(0);
        }
    }
    let mut tx = store.write().await?;
    let due = pending::due(tx.conn(), &now, 100).await?;
    for row in &due {
        let mut by = By::system();
        by.actor = Actor::scheduler();
        by.meta.organization_id = Some(row.organization_id.clone());
        let outcome = apply_in(tx.conn(), row, &by).await?;
        settle(tx.conn(), row, outcome, &by).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

/// Applies a held change in the open transaction. The outer error is the database's (the
/// whole run is retried); the inner one is why this change no longer applies.
async fn apply_in(conn: &mut Conn, row: &PendingChange, by: &By) -> Result<Result<()>> {
    let outcome = async {
        let (flag, before) = flag_configs::load(conn, &row.flag_id, &row.environment_id).await?;
        let author = author_of(row)?;
        let need = match row.kind {
            Kind::Scheduled => role_to_change(conn, &row.environment_id).await?,
            Kind::Request => Role::Editor,
        };
        author.still_may(conn, &row.organization_id, need).await?;
        if row.kind == Kind::Request && row.approved_version != Some(before.version) {
            return Err(Error::Refused {
                code: "stale",
                message: format!(
                    "the configuration changed after the approval (version {} is now {}); \
                     the change request needs a new approval",
                    row.approved_version.unwrap_or_default(),
                    before.version
                ),
                details: Value::Null,
            });
        }
        let patch = Patch {
            changes: serde_json::from_str(&row.patch)?,
            comment: None,
        };
        let config = patched(&before, &patch)?;
        let text = comment_for(row, &author)?;
        let mut change = by.because(Some(&text));
        if row.kind == Kind::Request {
            change = change.unheld();
        }
        let action = Some(Action::FlagConfigUpdate);
        commit_in(conn, &flag, &before, config, change, action).await?;
        Ok(())
    }
    .await;
    match outcome {
        Err(Error::Unavailable) => Err(Error::Unavailable),
        Err(Error::Internal(e)) => Err(Error::Internal(e)),
        other => Ok(other),
    }
}

/// The comment of the configuration change a held change makes: who made it and why.
fn comment_for(row: &PendingChange, author: &Author) -> Result<String> {
    let why = row.comment.as_deref().unwrap_or_default();
    let who = &author.actor.name;
    let text = match row.kind {
        Kind::Scheduled => format!("scheduled by {who}"),
        Kind::Request => {
            let approvers: Vec<String> = reviews_of(row)?
                .into_iter()
                .filter(|r| r.decision == Decision::Approve)
                .map(|r| r.reviewer.name)
                .collect();
            format!(
                "change request by {who}, approved by {}",
                approvers.join(", ")
            )
        }
    };
    // A revision comment holds at most 1000 characters.
    let full = match why.is_empty() {
        true => text,
        false => format!("{text}: {why}"),
    };
    Ok(full.chars().take(1000).collect())
}

/// Stores and records the outcome of applying `before`.
async fn settle(
    conn: &mut Conn,
    before: &PendingChange,
    outcome: Result<()>,
    by: &By,
) -> Result<PendingChange> {
    let (after, action) = match (outcome, before.kind) {
        (Ok(()), kind) => (
            PendingChange {
                status: Status::Applied,
                applied_at: Some(now_rfc3339()),
                error: None,
                ..next(before)
            },
            match kind {
                Kind::Scheduled => Action::ScheduledChangeApply,
                Kind::Request => Action::ChangeRequestApply,
            },
        ),
        (Err(e @ Error::Refused { code: "stale", .. }), _) => (
            PendingChange {
                status: Status::Open,
                approved_version: None,
                error: Some(e.to_string()),
                ..next(before)
            },
            Action::ChangeRequestStale,
        ),
        (Err(e), kind) => (
            PendingChange {
                status: Status::Failed,
                error: Some(e.to_string()),
                ..next(before)
            },
            match kind {
                Kind::Scheduled => Action::ScheduledChangeFail,
                Kind::Request => Action::ChangeRequestFail,
            },
        ),
    };
    pending::update(conn, &after).await?;
    let comment = after.error.as_deref();
    record(conn, by.because(comment), action, &after, Some(before)).await?;
    Ok(after)
}
