-- Guarded staged rollouts: release plans, which move one flag in one environment from a
-- control variation to a treatment variation in stages, and job leases, which let exactly
-- one node of a cluster run a job (the release guard).

CREATE TABLE release_plans (
    id TEXT PRIMARY KEY,
    flag_id TEXT NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    -- Keys are immutable: the guard reads the insights of (environment_id, flag_key).
    flag_key TEXT NOT NULL,
    treatment TEXT NOT NULL,
    control TEXT NOT NULL,
    bucket_by TEXT NOT NULL,
    -- JSON array of {weight, min_duration?}.
    stages TEXT NOT NULL,
    auto_advance INTEGER NOT NULL,
    -- JSON {event, max_rate, relative_to_control, window, min_samples}, or NULL.
    guard TEXT,
    -- running, paused, completed, rolled_back, cancelled.
    status TEXT NOT NULL,
    stage INTEGER NOT NULL,
    -- Fixed-width RFC 3339 UTC.
    stage_started_at TEXT NOT NULL,
    ended_at TEXT,
    -- Why it was rolled back (or paused by the server).
    reason TEXT,
    -- JSON: the guard's readings when the plan ended.
    readings TEXT,
    comment TEXT,
    -- JSON actor {id, name}.
    created_by TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- At most one live plan per flag and environment.
CREATE UNIQUE INDEX release_plans_live ON release_plans (flag_id, environment_id)
    WHERE status IN ('running', 'paused');
CREATE INDEX release_plans_flag ON release_plans (flag_id, environment_id, created_at);
CREATE INDEX release_plans_project ON release_plans (project_id, status);
CREATE INDEX release_plans_status ON release_plans (status);

-- A job that must run on one node at a time holds its lease; another node takes it over
-- once it expires (the holder stopped or lost the database).
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    -- Milliseconds since the Unix epoch.
    expires_at INTEGER NOT NULL
);
