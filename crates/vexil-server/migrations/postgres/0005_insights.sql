-- Insights: evaluation counts and tracked events in time buckets, and when each variation of
-- each flag was last served in each environment. No foreign keys: counts of a flag or
-- environment deleted meanwhile are harmless and leave with the retention purge.

CREATE TABLE insight_counts (
    environment_id TEXT NOT NULL,
    flag_key TEXT NOT NULL,
    -- 'minute' (kept 48 hours) or 'hour' (kept --insights-retention-days).
    resolution TEXT NOT NULL,
    -- The bucket's start, milliseconds since the Unix epoch.
    bucket BIGINT NOT NULL,
    variation TEXT NOT NULL,
    -- '' for evaluations; otherwise the tracked event key attributed to this variation.
    event_key TEXT NOT NULL,
    count BIGINT NOT NULL,
    -- The sum of the tracked events' values (0 for evaluations).
    total DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (environment_id, flag_key, resolution, bucket, variation, event_key)
);
CREATE INDEX insight_counts_age ON insight_counts (resolution, bucket);

-- When each variation of each flag was last served in each environment (a few rows per
-- flag, so that the stale rules read no buckets).
CREATE TABLE flag_usage (
    environment_id TEXT NOT NULL,
    flag_key TEXT NOT NULL,
    variation TEXT NOT NULL,
    -- Milliseconds since the Unix epoch.
    last_evaluated_at BIGINT NOT NULL,
    PRIMARY KEY (environment_id, flag_key, variation)
);
