//! Insights storage: evaluation and tracked-event counts in minute and hour buckets, and when
//! each flag was last evaluated per environment. Every count is added to its minute bucket
//! and to its hour bucket in the same transaction (so the hourly rollup can neither miss nor
//! double a count); the purge drops minute buckets after 48 hours and hour buckets after
//! the retention, so the size is bounded by flags × variations × event keys × buckets.
//! `flag_usage` keeps when each variation was last served, per environment: what the stale
//! rules read, a few rows per flag.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::StoreResult;

/// Milliseconds in a minute and in an hour.
pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
/// How long minute buckets are kept.
pub(crate) const MINUTES_KEPT_MS: i64 = 48 * HOUR_MS;

/// Bucket resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
        }
    }

    pub(crate) fn ms(self) -> i64 {
        match self {
            Resolution::Minute => MINUTE_MS,
            Resolution::Hour => HOUR_MS,
        }
    }
}

/// One count to add: `count` evaluations of `variation` (`event_key` empty), or `count`
/// tracked `event_key` events (values summing to `total`) attributed to `variation`, in
/// the minute starting at `minute`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Addition {
    pub(crate) environment_id: String,
    pub(crate) flag_key: String,
    pub(crate) variation: String,
    pub(crate) event_key: String,
    pub(crate) minute: i64,
    pub(crate) count: i64,
    pub(crate) total: f64,
}

/// `(environment id, flag key, bucket, variation, event key)`: the table's key order.
type BucketKey<'a> = (&'a str, &'a str, i64, &'a str, &'a str);

/// Rows per multi-row statement (7 parameters each, well under SQLite's limit).
const CHUNK: usize = 200;

/// Adds `rows` to their minute and hour buckets, in the table's key order (two nodes adding
/// to the same rows then lock them in one order, so they cannot deadlock).
pub(crate) async fn add(conn: &mut AnyConnection, rows: &[Addition]) -> StoreResult<()> {
    for resolution in [Resolution::Minute, Resolution::Hour] {
        // Several minutes of one hour fall into one hour bucket: merge them first (one
        // statement may not update a row twice on PostgreSQL). Keyed like the table.
        let mut merged: BTreeMap<BucketKey<'_>, (i64, f64)> = BTreeMap::new();
        for row in rows {
            let bucket = row.minute - row.minute.rem_euclid(resolution.ms());
            let key = (
                row.environment_id.as_str(),
                row.flag_key.as_str(),
                bucket,
                row.variation.as_str(),
                row.event_key.as_str(),
            );
            let cell = merged.entry(key).or_insert((0, 0.0));
            cell.0 = cell.0.saturating_add(row.count);
            cell.1 = finite_sum(cell.1, row.total);
        }
        let merged: Vec<Addition> = merged
            .into_iter()
            .map(
                |((environment_id, flag_key, minute, variation, event_key), (count, total))| {
                    Addition {
                        environment_id: environment_id.to_owned(),
                        flag_key: flag_key.to_owned(),
                        variation: variation.to_owned(),
                        event_key: event_key.to_owned(),
                        minute,
                        count,
                        total,
                    }
                },
            )
            .collect();
        for chunk in merged.chunks(CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = i * 7;
                    format!(
                        "(${}, ${}, '{}', ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        resolution.as_str(),
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6,
                        p + 7
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO insight_counts (environment_id, flag_key, resolution, bucket, \
                 variation, event_key, count, total) VALUES {} \
                 ON CONFLICT (environment_id, flag_key, resolution, bucket, variation, event_key) \
                 DO UPDATE SET count = CASE WHEN insight_counts.count > {MAX_COUNT} - excluded.count \
                 THEN {MAX_COUNT} ELSE insight_counts.count + excluded.count END, \
                 total = insight_counts.total + excluded.total",
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(r.environment_id.as_str())
                    .bind(r.flag_key.as_str())
                    .bind(r.minute)
                    .bind(r.variation.as_str())
                    .bind(r.event_key.as_str())
                    .bind(r.count)
                    .bind(r.total);
            }
            query.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// When a variation was served: `(environment id, flag key, variation, ms)`.
pub(crate) type Served = (String, String, String, i64);

/// The most a stored count holds: additions stop there rather than overflow (far beyond any
/// real traffic; reports are bounded too).
const MAX_COUNT: i64 = i64::MAX / 2;

/// `a + b`, kept finite (a sum of values is clamped rather than becoming infinite or NaN,
/// which SQLite would store as NULL).
pub(crate) fn finite_sum(a: f64, b: f64) -> f64 {
    let sum = a + b;
    if sum.is_finite() {
        sum
    } else if sum.is_nan() {
        a
    } else {
        sum.clamp(-f64::MAX, f64::MAX)
    }
}

/// Notes that a variation of a flag was served in an environment at `at` (ms), unless a
/// later evaluation is already noted.
pub(crate) async fn touch(
    conn: &mut AnyConnection,
    (environment_id, flag_key, variation, at): &Served,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO flag_usage (environment_id, flag_key, variation, last_evaluated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (environment_id, flag_key, variation) DO UPDATE SET last_evaluated_at = \
         CASE WHEN excluded.last_evaluated_at > flag_usage.last_evaluated_at \
         THEN excluded.last_evaluated_at ELSE flag_usage.last_evaluated_at END",
    )
    .bind(environment_id.as_str())
    .bind(flag_key.as_str())
    .bind(variation.as_str())
    .bind(*at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops minute buckets older than `minutes_before`, hour buckets older than
/// `hours_before`, and last-served notes older than `usage_before` (ms); returns how many
/// rows went.
pub(crate) async fn purge(
    conn: &mut AnyConnection,
    minutes_before: i64,
    hours_before: i64,
    usage_before: i64,
) -> StoreResult<u64> {
    let mut gone = 0;
    for (resolution, before) in [("minute", minutes_before), ("hour", hours_before)] {
        gone += sqlx::query("DELETE FROM insight_counts WHERE resolution = $1 AND bucket < $2")
            .bind(resolution)
            .bind(before)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    gone += sqlx::query("DELETE FROM flag_usage WHERE last_evaluated_at < $1")
        .bind(usage_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(gone)
}

/// One stored bucket of one flag in one environment.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub(crate) struct Bucket {
    pub(crate) bucket: i64,
    pub(crate) variation: String,
    pub(crate) event_key: String,
    pub(crate) count: i64,
    pub(crate) total: f64,
}

/// A flag's buckets of `resolution` in an environment with `from <= bucket < to`, oldest
/// first.
pub(crate) async fn buckets(
    conn: &mut AnyConnection,
    environment_id: &str,
    flag_key: &str,
    resolution: Resolution,
    (from, to): (i64, i64),
) -> StoreResult<Vec<Bucket>> {
    Ok(sqlx::query_as::<_, Bucket>(
        "SELECT bucket, variation, event_key, count, total FROM insight_counts \
         WHERE environment_id = $1 AND flag_key = $2 AND resolution = $3 \
         AND bucket >= $4 AND bucket < $5 ORDER BY bucket, variation, event_key",
    )
    .bind(environment_id)
    .bind(flag_key)
    .bind(resolution.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Evaluations per flag and variation in an environment over hour buckets
/// `from <= bucket < to`: `(flag key, variation, count)`.
pub(crate) async fn evaluations_by_flag(
    conn: &mut AnyConnection,
    environment_ids: &[String],
    (from, to): (i64, i64),
) -> StoreResult<Vec<(String, String, i64)>> {
    if environment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT flag_key, variation, CAST(SUM(count) AS BIGINT) FROM insight_counts \
         WHERE resolution = 'hour' AND event_key = '' AND bucket >= $1 AND bucket < $2 AND {} \
         GROUP BY flag_key, variation",
        super::in_list("environment_id", 3, environment_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(sql))
        .bind(from)
        .bind(to);
    for id in environment_ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(conn).await?)
}

/// The variations of each flag served in any of `environment_ids` since `since` (ms):
/// `(flag key, variation)`.
pub(crate) async fn variations_since(
    conn: &mut AnyConnection,
    environment_ids: &[String],
    since: i64,
) -> StoreResult<Vec<(String, String)>> {
    if environment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT flag_key, variation FROM flag_usage WHERE last_evaluated_at >= $1 AND {}",
        super::in_list("environment_id", 2, environment_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql)).bind(since);
    for id in environment_ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(conn).await?)
}

/// When each flag was last evaluated in any of `environment_ids` (ms), by flag key.
pub(crate) async fn last_evaluated(
    conn: &mut AnyConnection,
    environment_ids: &[String],
) -> StoreResult<Vec<(String, i64)>> {
    if environment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT flag_key, MAX(last_evaluated_at) FROM flag_usage WHERE {} GROUP BY flag_key",
        super::in_list("environment_id", 1, environment_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(sql));
    for id in environment_ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(conn).await?)
}

/// Writes counts and last-evaluated notes in one transaction of their own: not a
/// `Store::write` (no audited state changes, nothing for snapshots to follow, no cluster
/// lock), and additions commute, so nodes flushing at once need no ordering beyond the
/// stable row order of `add`.
pub(crate) async fn save(
    store: &super::Store,
    rows: &[Addition],
    usage: &[Served],
) -> StoreResult<()> {
    use sqlx::Connection as _;
    let mut conn = store.read().await?;
    let mut tx = conn.begin().await?;
    add(&mut tx, rows).await?;
    for served in usage {
        touch(&mut tx, served).await?;
    }
    tx.commit().await?;
    Ok(())
}
