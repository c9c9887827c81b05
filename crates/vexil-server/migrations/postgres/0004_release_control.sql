-- Release control: environments that require approval, and pending changes: configuration
-- merge patches held until a time (scheduled changes) or an approval (change requests).

ALTER TABLE environments ADD COLUMN requires_approval BIGINT NOT NULL DEFAULT 0;

CREATE TABLE pending_changes (
    id TEXT PRIMARY KEY,
    -- 'scheduled' or 'request'.
    kind TEXT NOT NULL,
    flag_id TEXT NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    -- The configuration merge patch (JSON), without comment.
    patch TEXT NOT NULL,
    comment TEXT,
    -- Fixed-width RFC 3339 UTC, so that text order is time order. Required when scheduled.
    execute_at TEXT,
    -- scheduled: pending, applied, failed, cancelled;
    -- request: open, approved, applied, rejected, cancelled, failed.
    status TEXT NOT NULL,
    -- Who proposed or scheduled it (JSON: actor, and what is needed to check their role
    -- again when it is applied).
    author TEXT NOT NULL,
    author_id TEXT NOT NULL,
    -- The configuration version the patch was written against, and the one an approval
    -- was given at (a later change makes the approval stale).
    base_version BIGINT NOT NULL,
    approved_version BIGINT,
    -- JSON array of {reviewer, decision, comment, at}.
    reviews TEXT NOT NULL,
    applied_at TEXT,
    error TEXT,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX pending_changes_due ON pending_changes (status, execute_at);
CREATE INDEX pending_changes_flag ON pending_changes (flag_id, environment_id);
CREATE INDEX pending_changes_project ON pending_changes (project_id, kind, status);
