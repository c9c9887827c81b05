//! Criterion benchmarks of evaluation through the SDK's public API (the target:
//! under 200 ns for a boolean flag with 5 rules), next to the engine alone and the parts the
//! SDK adds (snapshot load, clock). The flags are `vexil-core`'s benchmark fixtures. Run with
//! `cargo bench -p vexil-sdk --bench evaluate`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vexil_sdk::Client;

#[path = "../../vexil-core/benches/fixtures/mod.rs"]
mod fixtures;

/// An offline client with the fixture flags; `with_schedule` adds a flag with a `$now`
/// clause, which makes every evaluation read the system clock.
fn client(with_schedule: bool) -> Client {
    let mut ruleset = fixtures::ruleset_value(0);
    if with_schedule {
        ruleset["flags"]["scheduled"] = serde_json::json!({"type": "boolean",
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": true, "off_variation": "off", "fallthrough": {"variation": "off"},
            "rules": [{"clauses": [{"attribute": "$now", "op": "after", "values": ["2026-06-01T00:00:00Z"]}],
                       "serve": {"variation": "on"}}]});
    }
    Client::offline_builder()
        .bootstrap_json(ruleset.to_string())
        .build()
        .expect("fixture ruleset is valid")
}

fn sdk(c: &mut Criterion) {
    let client = client(false);
    let context = fixtures::context();
    let mut group = c.benchmark_group("sdk");
    for (name, flag) in [
        ("bool_value_no_rules", "simple"),
        ("bool_value_5_rules", "five-rules"),
        ("bool_value_rollout_50_50", "rollout"),
        ("bool_value_prerequisite_chain_3", "chain-0"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| client.bool_value(black_box(flag), black_box(&context), false))
        });
    }
    group.bench_function("bool_detail_5_rules", |b| {
        b.iter(|| client.bool_detail(black_box("five-rules"), black_box(&context), false))
    });
    group.bench_function("bool_value_flag_not_found", |b| {
        b.iter(|| client.bool_value(black_box("missing"), black_box(&context), false))
    });
    // When some flag uses `$now`, every evaluation reads the system clock.
    let timed = self::client(true);
    group.bench_function("bool_value_5_rules_clock_read", |b| {
        b.iter(|| timed.bool_value(black_box("five-rules"), black_box(&context), false))
    });
    group.finish();
}

fn engine(c: &mut Criterion) {
    let snapshot = fixtures::snapshot(0);
    let context = fixtures::context();
    c.bench_function("engine/evaluate_5_rules", |b| {
        b.iter(|| snapshot.evaluate(black_box("five-rules"), black_box(&context), 0))
    });
}

fn threads(c: &mut Criterion) {
    // Two threads evaluating at once (this machine has two cores): the snapshot load is
    // lock-free and shares no counter between readers, so each keeps its single-thread speed.
    let client = client(false);
    let context = fixtures::context();
    c.bench_function("sdk/bool_value_5_rules_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            black_box(client.bool_value(
                                black_box("five-rules"),
                                black_box(&context),
                                false,
                            ));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

/// The parts the SDK adds to the engine: the snapshot load and (when needed) the clock.
fn overhead(c: &mut Criterion) {
    let cell = arc_swap::ArcSwapOption::from(Some(std::sync::Arc::new(fixtures::snapshot(0))));
    c.bench_function("overhead/arc_swap_load", |b| {
        b.iter(|| black_box(cell.load().is_some()))
    });
    c.bench_function("overhead/system_time", |b| {
        b.iter(|| black_box(std::time::SystemTime::now()))
    });
}

criterion_group!(benches, sdk, engine, threads, overhead);
criterion_main!(benches);
