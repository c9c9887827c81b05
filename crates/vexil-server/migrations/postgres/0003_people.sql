-- People and permissions: users, organization memberships with roles, browser sessions,
-- and personal/service tokens (the api_tokens table grows kind, owner, expiry, revocation).
-- Audit entries record the organization they belong to, for per-organization reading.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Stored lowercased: one account per address whatever its case.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- Argon2id, PHC string format.
    password_hash TEXT NOT NULL,
    -- 1 while the password is one an organization admin chose or was shown (a new member):
    -- until the user sets their own, the account joins no other organization.
    password_set_by_other BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- owner, admin, editor or viewer.
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- The absolute end; the idle end is last_seen_at plus the configured idle timeout.
    expires_at TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- instance (the bootstrap/first-start admin token), personal (acts as its user, capped
-- at its role) or service (belongs to one organization, with its role there).
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'instance';
ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT;
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX api_tokens_organization ON api_tokens (organization_id);

ALTER TABLE audit_log ADD COLUMN organization_id TEXT;
CREATE INDEX audit_log_organization ON audit_log (organization_id, seq);
