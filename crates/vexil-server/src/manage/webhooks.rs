//! Webhooks: a project's subscriptions to its audit trail (admin role), and their delivery.
//! The outbox turns committed audit entries into deliveries, in order, one per matching
//! webhook ([`enqueue`]); [`deliver_due`] sends each webhook's deliveries one at a time in
//! that order, retrying a failure with exponential backoff until it has failed for the
//! retry window (24 h), when the webhook is disabled with the reason. Both run on the one
//! node holding the `webhooks` lease (`jobs::webhooks`). A test and a redelivery are sent at
//! once by the node that takes the request.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fields::{Patch, check_comment, check_name};
use super::{At, By, Error, Result, found, load, load_at, unchanged};
use crate::audit::{Action, Actor};
use crate::clock::now_ms;
use crate::store::projects::Project;
use crate::store::webhooks::{self as rows, Announced, Attempt, Delivery, Named, Webhook};
use crate::store::{Conn, Record as _, Store, new_id, now_rfc3339};
use crate::webhook::{self, Sender, Sentence};

/// Most event patterns one webhook may have.
const MAX_PATTERNS: usize = 50;
/// Most webhooks one project may have.
const MAX_PER_PROJECT: i64 = 25;
/// Most audit entries one outbox pass reads.
const BATCH: i64 = 500;

/// A new webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "ops channel", "url": "https://hooks.slack.com/services/T000/B000/XXXX",
    "events": ["flag.*", "config.updated", "release.rolled_back"], "format": "slack", "enabled": true}))]
pub(crate) struct NewWebhook {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub(crate) name: String,
    /// An `http://` or `https://` URL; loopback, private and link-local addresses are
    /// refused unless the server runs with `--webhook-allow-private`.
    #[schema(max_length = 2000)]
    pub(crate) url: String,
    /// Event patterns (default `["*"]`): event types, families such as `flag.*`, or `*`.
    pub(crate) events: Option<Vec<String>>,
    /// `standard` (default), `slack` or `discord`.
    pub(crate) format: Option<String>,
    /// Default `true`.
    pub(crate) enabled: Option<bool>,
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// The editable fields, as a patch leaves them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Editable {
    name: String,
    url: String,
    events: Vec<String>,
    format: String,
    enabled: bool,
}

/// Every problem with the editable fields, by field.
fn check(e: &Editable, allow_private: bool) -> Result<()> {
    let mut fields = Map::new();
    if let Err(Error::Invalid { fields: f, .. }) = check_name("name", &e.name) {
        fields.extend(f);
    }
    let mut note = |field: String, problem: String| {
        fields.insert(field, Value::String(problem));
    };
    if let Err(problem) = webhook::check_url(&e.url, allow_private) {
        note("url".into(), problem);
    }
    if e.events.is_empty() || e.events.len() > MAX_PATTERNS {
        note(
            "events".into(),
            format!("must list 1 to {MAX_PATTERNS} event patterns"),
        );
    }
    for (i, pattern) in e.events.iter().enumerate() {
        if let Err(problem) = webhook::check_pattern(pattern) {
            note(format!("events[{i}]"), problem);
        }
    }
    if !webhook::FORMATS.contains(&e.format.as_str()) {
        note(
            "format".into(),
            format!("must be one of {}", webhook::FORMATS.join(", ")),
        );
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_fields(fields))
    }
}

pub(crate) async fn list(
    store: &Store,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Webhook>, i64)> {
    let mut conn = store.read().await?;
    load::<Project>(&mut conn, project_id).await?;
    Ok(rows::list(&mut conn, project_id, limit, offset).await?)
}

/// One webhook (never its secret).
pub(crate) async fn get(store: &Store, id: &str) -> Result<Webhook> {
    let mut conn = store.read().await?;
    load(&mut conn, id).await
}

/// Creates a webhook: the record and its secret (shown to the caller once). It announces
/// what happens after its creation.
pub(crate) async fn create(
    store: &Store,
    by: &By,
    sender: &Sender,
    project_id: &str,
    input: NewWebhook,
) -> Result<(Webhook, String)> {
    let editable = Editable {
        name: input.name,
        url: input.url.trim().to_owned(),
        events: input.events.unwrap_or_else(|| vec!["*".into()]),
        format: input.format.unwrap_or_else(|| "standard".into()),
        enabled: input.enabled.unwrap_or(true),
    };
    check(&editable, sender.allow_private)?;
    check_comment(input.comment.as_deref())?;
    let mut tx = store.write().await?;
    load::<Project>(tx.conn(), project_id).await?;
    if rows::count(tx.conn(), project_id).await? >= MAX_PER_PROJECT {
        return Err(Error::conflict(
            format!("a project has at most {MAX_PER_PROJECT} webhooks; delete one first"),
            json!({"limit": MAX_PER_PROJECT}),
        ));
    }
    let now = now_rfc3339();
    let record = Webhook {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: editable.name,
        url: editable.url,
        events: editable.events,
        format: editable.format,
        enabled: editable.enabled,
        disabled_reason: None,
        from_seq: rows::audit_head(tx.conn()).await?,
        created_by: serde_json::to_value(&by.actor)?,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let secret = webhook::new_secret();
    rows::insert(tx.conn(), &record, &secret).await?;
    by.because(input.comment.as_deref())
        .record_json(
            tx.conn(),
            Action::WebhookCreate,
            &record.id,
            None,
            Some(audited(&record)),
        )
        .await?;
    tx.commit().await?;
    Ok((record, secret))
}

/// Changes a webhook (a merge patch of `name`, `url`, `events`, `format`, `enabled`).
/// Enabling it clears the reason it was disabled for and announces what happens from then
/// on; deliveries still pending from before go out first.
pub(crate) async fn update(
    store: &Store,
    by: &By,
    sender: &Sender,
    at: At<'_>,
    patch: &Patch,
) -> Result<Webhook> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    // What happened before this change is turned into deliveries under the webhook as it
    // was (a lagging outbox must not apply the new filter, or the disabling, backwards).
    enqueue_in(tx.conn(), sender).await?;
    let before: Webhook = load_at(tx.conn(), id, expected).await?;
    let changes: Editable = patch.apply(
        json!({"name": before.name, "url": before.url, "events": before.events,
            "format": before.format, "enabled": before.enabled}),
        &["id", "project_id"],
        &json!({"id": before.id, "project_id": before.project_id}),
    )?;
    let changes = Editable {
        url: changes.url.trim().to_owned(),
        ..changes
    };
    check(&changes, sender.allow_private)?;
    let mut after = Webhook {
        name: changes.name,
        url: changes.url,
        events: changes.events,
        format: changes.format,
        enabled: changes.enabled,
        ..before.next_version()
    };
    if after.enabled != before.enabled {
        after.disabled_reason = None;
    }
    if after.enabled && !before.enabled {
        after.from_seq = rows::audit_head(tx.conn()).await?;
    }
    if unchanged(&before, &after) {
        return Ok(before);
    }
    let change = by.because(patch.comment.as_deref());
    save_in(tx.conn(), change, &before, &after, Action::WebhookUpdate).await?;
    tx.commit().await?;
    Ok(after)
}

/// A webhook as the audit trail records it: its URL cut to scheme and host, because for
/// chat formats the URL is itself the credential, and every member reads the trail.
fn audited(w: &Webhook) -> Value {
    let mut doc = serde_json::to_value(w).unwrap_or_default();
    let shown = reqwest_tls::Url::parse(&w.url)
        .ok()
        .and_then(|u| u.host_str().map(|h| format!("{}://{h}/…", u.scheme())))
        .unwrap_or_else(|| "…".into());
    doc["url"] = Value::String(shown);
    doc
}

/// Stores a new version of a webhook, audited without its URL.
async fn save_in(
    conn: &mut Conn,
    change: super::Change<'_>,
    before: &Webhook,
    after: &Webhook,
    action: Action,
) -> Result<()> {
    rows::update(conn, after).await?;
    change
        .record_json(
            conn,
            action,
            &after.id,
            Some(audited(before)),
            Some(audited(after)),
        )
        .await
}

/// Deletes a webhook with its deliveries.
pub(crate) async fn delete(store: &Store, by: &By, at: At<'_>) -> Result<()> {
    let (id, expected) = at;
    let mut tx = store.write().await?;
    let hook: Webhook = load_at(tx.conn(), id, expected).await?;
    <Webhook as crate::store::Record>::delete(tx.conn(), id).await?;
    by.because(None)
        .record_json(
            tx.conn(),
            Action::WebhookDelete,
            id,
            Some(audited(&hook)),
            None,
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A page of a webhook's deliveries, newest first (`status`: only those).
pub(crate) async fn deliveries(
    store: &Store,
    id: &str,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Delivery>, i64)> {
    if let Some(s) = status
        && !["pending", "delivered", "failed"].contains(&s)
    {
        return Err(Error::invalid_field(
            "status",
            "must be pending, delivered or failed",
        ));
    }
    let mut conn = store.read().await?;
    load::<Webhook>(&mut conn, id).await?;
    Ok(rows::deliveries(&mut conn, id, status, limit, offset).await?)
}

/// One delivery with its attempts.
pub(crate) async fn delivery(
    store: &Store,
    id: &str,
    delivery_id: &str,
) -> Result<(Delivery, Vec<Attempt>)> {
    let mut conn = store.read().await?;
    load::<Webhook>(&mut conn, id).await?;
    let delivery = found(
        rows::get_delivery(&mut conn, id, delivery_id).await?,
        "delivery",
        delivery_id,
    )?;
    let attempts = rows::attempts(&mut conn, delivery_id).await?;
    Ok((delivery, attempts))
}

/// Sends a `webhook.test` event now (enabled or not) and records it as a delivery that is
/// not retried.
pub(crate) async fn test(store: &Store, by: &By, sender: &Sender, id: &str) -> Result<Delivery> {
    let (hook, secret) = hook_and_secret(store, id).await?;
    let names = {
        let mut conn = store.read().await?;
        Names::of_project(&mut conn, &hook.project_id, &sender.public_url).await?
    };
    let at = now_rfc3339();
    let sentence = Sentence {
        actor: by.actor.name.clone(),
        verb: "sent a test event to".into(),
        subject: hook.name.clone(),
        link: names.link(&format!("/{}/{}/webhooks", names.org, names.project)),
        rest: String::new(),
        why: None,
    };
    let data = json!({
        "webhook_id": hook.id, "webhook_name": hook.name, "actor": by.actor,
        "project": {"id": hook.project_id, "key": names.project}, "at": at,
        "message": sentence.plain(),
    });
    let message_id = format!("msg_{}", new_id());
    let payload = webhook::stored(webhook::TEST_EVENT, &at, &data, &sentence);
    let delivery = pending(&hook, webhook::TEST_EVENT, message_id, 0, payload);
    let body = webhook::render(&hook.format, &delivery.payload);
    let outcome = sender
        .send(&hook.url, &secret, &delivery.message_id, &body)
        .await;
    let mut tx = store.write().await?;
    // Deleted while the request was out: nothing to record it on.
    load::<Webhook>(tx.conn(), id).await?;
    rows::insert_delivery(tx.conn(), &delivery).await?;
    let delivery = record_attempt(tx.conn(), delivery, &outcome, Final::Yes).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Sends a delivery again now, whatever its status; a success completes a pending one (the
/// webhook's later deliveries follow), a failure leaves its schedule as it was.
pub(crate) async fn redeliver(
    store: &Store,
    sender: &Sender,
    id: &str,
    delivery_id: &str,
) -> Result<Delivery> {
    let (hook, secret) = hook_and_secret(store, id).await?;
    let (delivery, _) = delivery(store, id, delivery_id).await?;
    let body = webhook::render(&hook.format, &delivery.payload);
    let outcome = sender
        .send(&hook.url, &secret, &delivery.message_id, &body)
        .await;
    let mut tx = store.write().await?;
    let current = found(
        rows::get_delivery(tx.conn(), id, delivery_id).await?,
        "delivery",
        delivery_id,
    )?;
    let delivery = record_attempt(tx.conn(), current, &outcome, Final::Manual).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// A new delivery to `hook`, not yet attempted.
fn pending(hook: &Webhook, event: &str, message_id: String, seq: i64, payload: String) -> Delivery {
    Delivery {
        id: new_id(),
        webhook_id: hook.id.clone(),
        event: event.to_owned(),
        message_id,
        seq,
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: None,
        next_attempt_ms: None,
        last_status_code: None,
        last_latency_ms: None,
        last_error: None,
        created_at: now_rfc3339(),
        delivered_at: None,
        failing_since: None,
        payload,
    }
}

async fn hook_and_secret(store: &Store, id: &str) -> Result<(Webhook, String)> {
    let mut conn = store.read().await?;
    let hook: Webhook = load(&mut conn, id).await?;
    let secret = found(rows::secret(&mut conn, id).await?, "webhook", id)?;
    Ok((hook, secret))
}

/// What a failed attempt leaves for later.
#[derive(Debug, Clone, Copy)]
enum Final {
    /// Nothing: the delivery is final after this attempt (a test).
    Yes,
    /// The delivery keeps its status and schedule (a redelivery by hand).
    Manual,
    /// Another attempt at this time (ms), or give up.
    Retry(Option<i64>),
}

/// Records one attempt and its effect on the delivery.
async fn record_attempt(
    conn: &mut Conn,
    mut d: Delivery,
    outcome: &webhook::Outcome,
    then: Final,
) -> Result<Delivery> {
    let now = now_ms();
    d.attempts += 1;
    d.last_status_code = outcome.status_code.map(i64::from);
    d.last_latency_ms = Some(outcome.latency_ms);
    d.last_error = outcome.failure();
    rows::insert_attempt(
        conn,
        &d.id,
        &Attempt {
            n: d.attempts,
            at: now_rfc3339(),
            status_code: d.last_status_code,
            latency_ms: outcome.latency_ms,
            error: outcome.error.clone(),
            response: outcome.response.clone(),
        },
    )
    .await?;
    if outcome.delivered() {
        d.status = "delivered".into();
        d.next_attempt_ms = None;
        d.delivered_at = Some(now_rfc3339());
    } else {
        match then {
            Final::Yes => {
                d.status = "failed".into();
                d.next_attempt_ms = None;
            }
            Final::Manual => {}
            Final::Retry(Some(at)) => {
                d.failing_since = d.failing_since.or(Some(now));
                d.next_attempt_ms = Some(at);
            }
            Final::Retry(None) => {
                d.status = "failed".into();
                d.next_attempt_ms = None;
            }
        }
    }
    rows::update_delivery(conn, &d).await?;
    Ok(Delivery {
        next_attempt_at: d.next_attempt_ms.map(vexil_core::time::format_rfc3339),
        ..d
    })
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// The first retry's delay; each next one doubles, up to an hour.
    pub(crate) base_ms: i64,
    /// How long a delivery is retried before the webhook is disabled.
    pub(crate) give_up_after_ms: i64,
}

impl Retry {
    /// The delay before attempt `n + 1` after `n` failed ones, with ±10 % jitter so that
    /// many failing webhooks do not retry in step.
    fn delay(self, failed: i64) -> i64 {
        let doublings = u32::try_from((failed - 1).clamp(0, 20)).unwrap_or(20);
        let delay = self
            .base_ms
            .saturating_mul(1_i64 << doublings)
            .min(3_600_000);
        let jitter = i64::from(uuid::Uuid::new_v4().as_bytes()[0]) - 128;
        delay + delay * jitter / 1280
    }
}

/// Turns the audit entries committed since the last pass into deliveries for every enabled
/// webhook of their project that asks for their event; returns how many were made. One
/// transaction: the cursor moves with the deliveries it made.
pub(crate) async fn enqueue(store: &Store, sender: &Sender) -> Result<usize> {
    // The write lock only when there is something to turn into deliveries.
    {
        let mut conn = store.read().await?;
        if rows::cursor(&mut conn).await? >= rows::audit_head(&mut conn).await? {
            return Ok(0);
        }
    }
    let mut tx = store.write().await?;
    let made = enqueue_in(tx.conn(), sender).await?;
    tx.commit().await?;
    Ok(made)
}

/// [`enqueue`] inside the caller's write transaction, until the outbox is up to date.
async fn enqueue_in(conn: &mut Conn, sender: &Sender) -> Result<usize> {
    let mut made = 0;
    while let Some(n) = enqueue_batch(conn, sender).await? {
        made += n;
    }
    Ok(made)
}

/// One batch of the outbox: how many deliveries it made (`None`: it is up to date).
async fn enqueue_batch(conn: &mut Conn, sender: &Sender) -> Result<Option<usize>> {
    let cursor = rows::cursor(conn).await?;
    let entries = rows::entries_after(conn, cursor, BATCH).await?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let hooks = rows::enabled(conn).await?;
    let mut made = 0;
    let mut names: HashMap<String, Names> = HashMap::new();
    for entry in &entries {
        let (Some(event), Some(project_id)) =
            (webhook::event_for(&entry.action), &entry.project_id)
        else {
            continue;
        };
        let wanted: Vec<&Webhook> = hooks
            .iter()
            .filter(|h| {
                &h.project_id == project_id
                    && entry.seq > h.from_seq
                    && webhook::matches(&h.events, event)
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        if !names.contains_key(project_id) {
            let found = Names::of_project(conn, project_id, &sender.public_url).await?;
            names.insert(project_id.clone(), found);
        }
        let project = &names[project_id];
        let announced = Announcement::of(conn, entry, event, project).await?;
        for hook in wanted {
            let payload = webhook::stored(event, &entry.at, &announced.data, &announced.sentence);
            let delivery = Delivery {
                next_attempt_ms: Some(now_ms()),
                ..pending(hook, event, format!("msg_{}", entry.id), entry.seq, payload)
            };
            rows::insert_delivery(conn, &delivery).await?;
            made += 1;
        }
    }
    rows::set_cursor(conn, last).await?;
    Ok(Some(made))
}

/// How long delivered and failed deliveries are kept.
const KEEP_DAYS: i64 = 30;

/// Deletes the deliveries (and attempts) that ended more than 30 days ago.
pub(crate) async fn purge(store: &Store) -> Result<u64> {
    let before = vexil_core::time::format_rfc3339(now_ms() - KEEP_DAYS * 86_400_000);
    let mut tx = store.write().await?;
    let n = rows::purge(tx.conn(), &before).await?;
    tx.commit().await?;
    Ok(n)
}

/// Whether the delivery job has anything to do (a cheap read every node makes).
pub(crate) async fn work_due(store: &Store) -> Result<bool> {
    let mut conn = store.read().await?;
    Ok(rows::work_due(&mut conn, now_ms()).await?)
}

/// Claims (or keeps) the delivery job's lease for `node` for [`LEASE_MS`]; whether it
/// holds it.
pub(crate) async fn claim(store: &Store, node: &str) -> bool {
    let now = now_ms();
    let claimed = async {
        let mut conn = store.read().await?;
        crate::store::release::claim_lease(&mut conn, LEASE, node, now, now + LEASE_MS).await
    };
    claimed.await.unwrap_or(false)
}

/// The delivery job's lease.
const LEASE: &str = "webhooks";
/// How long the lease is held without renewal: longer than one attempt's timeout.
const LEASE_MS: i64 = 30_000;

/// Sends every enabled webhook's due deliveries, each webhook's in order and one at a time
/// (webhooks side by side), until one fails (it is retried later and the later ones wait)
/// or `budget_ms` has passed. `node` renews its lease before each attempt (and stops if it
/// lost it). Returns how many attempts were made.
pub(crate) async fn deliver_due(
    store: &Store,
    sender: &Sender,
    retry: Retry,
    budget_ms: i64,
    node: &str,
) -> Result<usize> {
    let hooks = {
        let mut conn = store.read().await?;
        rows::enabled(&mut conn).await?
    };
    let deadline = now_ms() + budget_ms;
    let runs = hooks
        .iter()
        .map(|hook| deliver_for(store, sender, retry, hook, deadline, node));
    let done = futures_util::future::join_all(runs).await;
    let mut attempts = 0;
    for result in done {
        attempts += result?;
    }
    Ok(attempts)
}

/// One webhook's due deliveries, in order.
async fn deliver_for(
    store: &Store,
    sender: &Sender,
    retry: Retry,
    hook: &Webhook,
    deadline: i64,
    node: &str,
) -> Result<usize> {
    let mut attempts = 0;
    let secret = {
        let mut conn = store.read().await?;
        match rows::secret(&mut conn, &hook.id).await? {
            Some(secret) => secret,
            None => return Ok(0),
        }
    };
    while now_ms() < deadline {
        // Read again each round: disabled, re-pointed or re-formatted meanwhile.
        let (hook, head) = {
            let mut conn = store.read().await?;
            let Some(hook) = rows::get(&mut conn, &hook.id).await?.filter(|h| h.enabled) else {
                break;
            };
            let head = rows::head(&mut conn, &hook.id).await?;
            (hook, head)
        };
        let Some(delivery) = head else { break };
        if delivery.next_attempt_ms.is_some_and(|at| at > now_ms()) || !claim(store, node).await {
            break;
        }
        let body = webhook::render(&hook.format, &delivery.payload);
        let outcome = sender
            .send(&hook.url, &secret, &delivery.message_id, &body)
            .await;
        attempts += 1;
        let failed_for = now_ms() - delivery.failing_since.unwrap_or_else(now_ms);
        let then = if failed_for >= retry.give_up_after_ms {
            Final::Retry(None)
        } else {
            Final::Retry(Some(now_ms() + retry.delay(delivery.attempts + 1)))
        };
        let mut tx = store.write().await?;
        // Deleted, or redelivered by hand meanwhile: nothing more to do with this one.
        let current = rows::get_delivery(tx.conn(), &hook.id, &delivery.id).await?;
        let Some(current) = current.filter(|d| d.status == "pending") else {
            continue;
        };
        let recorded = record_attempt(tx.conn(), current, &outcome, then).await?;
        if recorded.status == "failed" {
            disable(tx.conn(), &hook.id, &recorded, retry).await?;
        }
        tx.commit().await?;
        if recorded.status != "delivered" {
            break;
        }
    }
    Ok(attempts)
}

/// Disables a webhook whose delivery failed for the whole retry window, saying why.
async fn disable(conn: &mut Conn, id: &str, failed: &Delivery, retry: Retry) -> Result<()> {
    let Some(before) = rows::get(conn, id).await? else {
        return Ok(());
    };
    let hours = retry.give_up_after_ms as f64 / 3_600_000.0;
    let window = if hours >= 1.0 {
        format!("{hours:.0} h")
    } else {
        format!("{} s", retry.give_up_after_ms / 1000)
    };
    let after = Webhook {
        enabled: false,
        disabled_reason: Some(format!(
            "disabled by the server: delivering {} ({}) failed for {window} over {} attempts; the last: {}",
            failed.event,
            failed.message_id,
            failed.attempts,
            failed.last_error.as_deref().unwrap_or("no answer")
        )),
        ..before.next_version()
    };
    let scope =
        crate::store::scopes::of(conn, crate::store::scopes::Of::Project, &before.project_id)
            .await?;
    let by = By {
        actor: Actor::webhooks(),
        meta: crate::audit::RequestMeta {
            organization_id: scope.map(|s| s.organization_id),
            ..crate::audit::RequestMeta::default()
        },
    };
    let reason = after.disabled_reason.clone();
    save_in(
        conn,
        by.because(reason.as_deref()),
        &before,
        &after,
        Action::WebhookDisable,
    )
    .await
}

/// The keys a project's messages name and link with.
#[derive(Debug, Clone)]
struct Names {
    org: String,
    project: String,
    project_name: String,
    base: String,
}

impl Names {
    async fn of_project(conn: &mut Conn, project_id: &str, base: &str) -> Result<Names> {
        let (project, project_name) = rows::key_of(conn, Named::Project, project_id)
            .await?
            .unwrap_or_else(|| (project_id.to_owned(), project_id.to_owned()));
        let org = rows::key_of(conn, Named::Organization, project_id)
            .await?
            .map(|(key, _)| key)
            .unwrap_or_default();
        Ok(Names {
            org,
            project,
            project_name,
            base: base.to_owned(),
        })
    }

    /// A console address: `base` + `/ui` + `path`, or nothing without a base.
    fn link(&self, path: &str) -> Option<String> {
        (!self.base.is_empty()).then(|| format!("{}/ui{path}", self.base))
    }
}

/// An audit entry as webhooks announce it: the envelope's data and the chat sentence.
#[derive(Debug)]
struct Announcement {
    data: Value,
    sentence: Sentence,
}

impl Announcement {
    async fn of(
        conn: &mut Conn,
        e: &Announced,
        event: &str,
        names: &Names,
    ) -> Result<Announcement> {
        let doc = |text: &Option<String>| -> Option<Value> {
            text.as_deref().and_then(|t| serde_json::from_str(t).ok())
        };
        let (before, after) = (doc(&e.before_doc), doc(&e.after_doc));
        let field = |name: &str| -> Option<String> {
            [&after, &before].into_iter().flatten().find_map(|d| {
                let d = d.as_array().and_then(|a| a.first()).unwrap_or(d);
                d.get(name).and_then(Value::as_str).map(str::to_owned)
            })
        };
        let environment = match &e.environment_id {
            Some(id) => rows::key_of(conn, Named::Environment, id)
                .await?
                .map(|(key, name)| json!({"id": id, "key": key, "name": name})),
            None => None,
        };
        let env_key = environment
            .as_ref()
            .and_then(|v| v["key"].as_str())
            .map(str::to_owned)
            .or_else(|| field("environment_key"));
        let family = event.split_once('.').map_or(event, |(f, _)| f);
        let flag_id = match family {
            "flag" => Some(e.resource_id.clone()),
            _ => field("flag_id"),
        };
        let flag_key = match family {
            "flag" => field("key"),
            _ => field("flag_key"),
        };
        let flag_key = match (flag_key, &flag_id) {
            (Some(key), _) => Some(key),
            (None, Some(id)) => rows::key_of(conn, Named::Flag, id).await?.map(|(k, _)| k),
            (None, None) => None,
        };
        let (org, project) = (&names.org, &names.project);
        let in_env = env_key
            .as_ref()
            .map(|env| format!(" in {env}"))
            .unwrap_or_default();
        let flag_page = |key: &str| match &env_key {
            Some(env) => format!("/{org}/{project}/flags/{key}/in/{env}"),
            None => format!("/{org}/{project}/flags/{key}"),
        };
        let flag = flag_key.clone().unwrap_or_else(|| "a flag".into());
        let plan_weight = || {
            after
                .as_ref()
                .and_then(|p| p.get("weight"))
                .and_then(Value::as_u64)
                .map(|w| format!(" at {w} %"))
                .unwrap_or_default()
        };
        let enabled = |d: &Option<Value>| {
            d.as_ref()
                .and_then(|d| d.get("enabled"))
                .and_then(Value::as_bool)
        };
        let mut why = e.comment.clone();
        let (verb, subject, rest, path): (&str, String, String, Option<String>) = match event {
            "flag.created" => (
                "created flag",
                flag,
                String::new(),
                Some(flag_page(flag_key.as_deref().unwrap_or_default())),
            ),
            "flag.updated" => (
                "updated flag",
                flag.clone(),
                String::new(),
                Some(flag_page(&flag)),
            ),
            "flag.archived" => (
                "archived flag",
                flag.clone(),
                String::new(),
                Some(flag_page(&flag)),
            ),
            "flag.restored" => (
                "restored flag",
                flag.clone(),
                String::new(),
                Some(flag_page(&flag)),
            ),
            "flag.deleted" => ("deleted flag", flag, String::new(), None),
            "flag.killed" => {
                let everywhere = after
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.len() > 1)
                    || e.environment_id.is_none();
                let rest = if everywhere {
                    " everywhere (kill switch)".to_owned()
                } else {
                    format!("{in_env} (kill switch)")
                };
                ("disabled", flag.clone(), rest, Some(flag_page(&flag)))
            }
            "config.updated" => {
                let verb = match (enabled(&before), enabled(&after)) {
                    (Some(false), Some(true)) => "enabled",
                    (Some(true), Some(false)) => "disabled",
                    _ => "changed the targeting of",
                };
                (verb, flag.clone(), in_env, Some(flag_page(&flag)))
            }
            "config.restored" => (
                "restored an earlier configuration of",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "schedule.created" => {
                let when = field("execute_at")
                    .map(|t| format!(" for {t}"))
                    .unwrap_or_default();
                (
                    "scheduled a change to",
                    flag.clone(),
                    format!("{in_env}{when}"),
                    Some(flag_page(&flag)),
                )
            }
            "schedule.cancelled" => (
                "cancelled the scheduled change to",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "schedule.applied" => (
                "applied the scheduled change to",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "schedule.failed" => {
                why = field("error").or(why);
                (
                    "could not apply the scheduled change to",
                    flag.clone(),
                    in_env,
                    Some(flag_page(&flag)),
                )
            }
            "change_request.created" => (
                "requested a change to",
                flag.clone(),
                in_env,
                Some(format!("/{org}/{project}/changes")),
            ),
            "change_request.approved" => (
                "approved the change to",
                flag.clone(),
                in_env,
                Some(format!("/{org}/{project}/changes")),
            ),
            "change_request.rejected" => (
                "rejected the change to",
                flag.clone(),
                in_env,
                Some(format!("/{org}/{project}/changes")),
            ),
            "change_request.applied" => (
                "applied the approved change to",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "change_request.stale" => (
                "found stale the change request for",
                flag.clone(),
                in_env,
                Some(format!("/{org}/{project}/changes")),
            ),
            "change_request.failed" => {
                why = field("error").or(why);
                (
                    "could not apply the change request for",
                    flag.clone(),
                    in_env,
                    Some(format!("/{org}/{project}/changes")),
                )
            }
            "change_request.cancelled" => (
                "cancelled the change request for",
                flag.clone(),
                in_env,
                Some(format!("/{org}/{project}/changes")),
            ),
            "release.started" => (
                "started a release of",
                flag.clone(),
                format!("{in_env}{}", plan_weight()),
                Some(flag_page(&flag)),
            ),
            "release.advanced" => (
                "advanced the release of",
                flag.clone(),
                format!("{in_env}{}", plan_weight().replace(" at ", " to ")),
                Some(flag_page(&flag)),
            ),
            "release.paused" => (
                "paused the release of",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "release.resumed" => (
                "resumed the release of",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "release.rolled_back" => {
                why = field("reason").or(why);
                (
                    "rolled back the release of",
                    flag.clone(),
                    in_env,
                    Some(flag_page(&flag)),
                )
            }
            "release.completed" => (
                "completed the release of",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            "release.cancelled" => (
                "cancelled the release of",
                flag.clone(),
                in_env,
                Some(flag_page(&flag)),
            ),
            _ => {
                // segment.*, api_key.*, environment.*: "created segment beta-users".
                let verb = event.split_once('.').map_or("changed", |(_, v)| v);
                let (noun, name, path) = match family {
                    "segment" => (
                        "segment",
                        field("key"),
                        Some(format!(
                            "/{org}/{project}/segments/{}",
                            field("key").unwrap_or_default()
                        )),
                    ),
                    "api_key" => (
                        "API key",
                        field("name"),
                        Some(format!("/{org}/{project}/keys")),
                    ),
                    _ => (
                        "environment",
                        field("key"),
                        Some(format!("/{org}/{project}/settings")),
                    ),
                };
                let path = path.filter(|_| !verb.ends_with("deleted"));
                let rest = if family == "api_key" {
                    in_env
                } else {
                    String::new()
                };
                return Ok(Announcement::finish(
                    e,
                    event,
                    names,
                    environment,
                    (flag_id, flag_key),
                    Sentence {
                        actor: e.actor_name.clone(),
                        verb: format!("{verb} {noun}"),
                        subject: name.unwrap_or_else(|| e.resource_id.clone()),
                        link: path.and_then(|p| names.link(&p)),
                        rest,
                        why,
                    },
                    (before, after),
                ));
            }
        };
        let sentence = Sentence {
            actor: e.actor_name.clone(),
            verb: verb.to_owned(),
            subject,
            link: path.and_then(|p| names.link(&p)),
            rest,
            why,
        };
        Ok(Announcement::finish(
            e,
            event,
            names,
            environment,
            (flag_id, flag_key),
            sentence,
            (before, after),
        ))
    }

    fn finish(
        e: &Announced,
        event: &str,
        names: &Names,
        environment: Option<Value>,
        (flag_id, flag_key): (Option<String>, Option<String>),
        sentence: Sentence,
        (before, after): (Option<Value>, Option<Value>),
    ) -> Announcement {
        let flag = flag_id.map(|id| json!({"id": id, "key": flag_key}));
        let data = json!({
            "id": e.id,
            "seq": e.seq,
            "at": e.at,
            "event": event,
            "action": e.action,
            "actor": {"id": e.actor_id, "name": e.actor_name},
            "resource_type": e.resource_type,
            "resource_id": e.resource_id,
            "before": before,
            "after": after,
            "comment": e.comment,
            "project": {"id": e.project_id, "key": names.project, "name": names.project_name},
            "environment": environment,
            "flag": flag,
            "message": sentence.plain(),
            "url": sentence.link,
        });
        Announcement { data, sentence }
    }
}
