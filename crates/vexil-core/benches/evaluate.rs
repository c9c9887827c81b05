//! Criterion benchmarks of the engine: single evaluations (and one counted for insights),
//! evaluate-all over 1,000 flags, and compiling 10,000 flags. Run with `cargo bench -p vexil-core`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vexil_core::{Change, Snapshot};

mod fixtures;

fn single(c: &mut Criterion) {
    let snapshot = fixtures::snapshot(0);
    let context = fixtures::context();
    let mut group = c.benchmark_group("evaluate");
    for (name, flag) in [
        ("boolean_no_rules", "simple"),
        ("boolean_5_rules", "five-rules"),
        ("rollout_50_50", "rollout"),
        ("prerequisite_chain_3", "chain-0"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| snapshot.evaluate(black_box(flag), black_box(&context), 0))
        });
    }
    // The same, counted for insights (one relaxed atomic add).
    group.bench_function("boolean_5_rules_counted", |b| {
        b.iter(|| {
            let detail = snapshot.evaluate(black_box("five-rules"), black_box(&context), 0);
            detail.count();
            detail
        })
    });
    group.finish();
}

fn bulk(c: &mut Criterion) {
    let snapshot = fixtures::snapshot(1000 - fixtures::BASE_FLAGS);
    assert_eq!(snapshot.len(), 1000);
    let context = fixtures::context();
    c.bench_function("evaluate_all_1000_flags", |b| {
        b.iter(|| {
            let mut on = 0usize;
            for (_, detail) in snapshot.evaluate_all(black_box(&context), 0) {
                on += usize::from(detail.variation == Some("on"));
            }
            on
        })
    });
}

fn compile(c: &mut Criterion) {
    let ruleset = fixtures::ruleset(10_000 - fixtures::BASE_FLAGS);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("compile_10000_flags", |b| {
        b.iter(|| Snapshot::compile(black_box(&ruleset)))
    });
    group.finish();

    // One flag changed in a 10,000-flag snapshot: only that flag is compiled and checked.
    let snapshot = Snapshot::compile(&ruleset).expect("valid");
    let mut changed = ruleset.flags["five-rules"].clone();
    changed.enabled = false;
    c.bench_function("apply_one_flag_change_10000_flags", |b| {
        b.iter(|| {
            snapshot.apply(
                2,
                black_box(&[Change::UpsertFlag {
                    key: "five-rules",
                    def: &changed,
                }]),
            )
        })
    });
}

criterion_group!(benches, single, bulk, compile);
criterion_main!(benches);
