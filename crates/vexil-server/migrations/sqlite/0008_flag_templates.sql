-- Flag templates: a project's predefined flag shapes (type, variations, tags, temporary,
-- client-side) with a starting configuration per environment, from which flags are made.

CREATE TABLE flag_templates (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- JSON {type, variations, tags, client_side, temporary, environments: {key: config}}.
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);
