-- Webhooks: a project's subscriptions to its audit trail, their deliveries (one per event
-- and webhook, delivered in audit order) and each delivery's attempts. The outbox cursor
-- is the last audit entry turned into deliveries; audit entries now also record the
-- project and environment they concern, so that deliveries find their webhooks.

ALTER TABLE audit_log ADD COLUMN project_id TEXT;
ALTER TABLE audit_log ADD COLUMN environment_id TEXT;

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    -- JSON array of event patterns ("flag.*", "config.updated", "*").
    events TEXT NOT NULL,
    -- standard, slack or discord.
    format TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    -- Why the server disabled it (deliveries failed for too long), or NULL.
    disabled_reason TEXT,
    -- The signing secret (whsec_…): needed to sign, so stored as is; never served after
    -- the creation response.
    secret TEXT NOT NULL,
    -- Audit entries after this one are announced (set when created or enabled).
    from_seq INTEGER NOT NULL,
    -- JSON actor {id, name}.
    created_by TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id, created_at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    -- The audit entry announced (its seq orders a webhook's deliveries); 0 for a test.
    seq INTEGER NOT NULL,
    -- The event type (config.updated, webhook.test, …).
    event TEXT NOT NULL,
    -- The webhook-id header: the same on every attempt, so that receivers can deduplicate.
    message_id TEXT NOT NULL,
    -- The body, fixed at creation (the signature covers it).
    payload TEXT NOT NULL,
    -- pending, delivered or failed.
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch; NULL once final.
    next_attempt_at INTEGER,
    last_status_code INTEGER,
    last_latency_ms INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    -- When the first attempt failed (retries stop 24 h after it), or NULL.
    failing_since INTEGER,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, status, seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    at TEXT NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    -- Why it failed without an answer (timeout, refused, …), or NULL.
    error TEXT,
    -- At most 1 KB of the response body.
    response TEXT,
    PRIMARY KEY (delivery_id, n)
);

-- One row: the last audit entry turned into deliveries. History before webhooks existed
-- is not announced.
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO webhook_outbox (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_log;
