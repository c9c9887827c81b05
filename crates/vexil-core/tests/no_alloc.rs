//! Proves that evaluating a boolean flag (no rules, five rules, a rollout, a prerequisite
//! chain) performs no heap allocation, with an allocator that counts per thread.
#![allow(unsafe_code)] // A GlobalAlloc implementation is unsafe by definition.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local, which itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl Fn()) -> u64 {
    f(); // Warm-up: lazily initialised state is not part of the hot path.
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..1000 {
        f();
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn boolean_evaluation_does_not_allocate() {
    let snapshot = fixtures::snapshot(0);
    let context = fixtures::context();
    let mut matching = context.clone();
    matching.insert("account", serde_json::json!({"plan": "enterprise"}));

    for (flag, ctx, expect_kind) in [
        ("simple", &context, "FALLTHROUGH"),
        ("five-rules", &context, "FALLTHROUGH"),
        ("five-rules", &matching, "RULE_MATCH"),
        ("rollout", &context, "FALLTHROUGH"),
        ("chain-0", &context, "FALLTHROUGH"),
    ] {
        let detail = snapshot.evaluate(flag, ctx, 0);
        assert_eq!(
            serde_json::to_value(detail.reason.kind).unwrap(),
            expect_kind,
            "{flag}"
        );
        let n = allocations_during(|| {
            // Counted for insights too: an atomic add, no allocation.
            std::hint::black_box(snapshot.evaluate(std::hint::black_box(flag), ctx, 0)).count();
        });
        assert_eq!(
            n, 0,
            "evaluating {flag} ({expect_kind}) allocated {n} times in 1000 runs"
        );
    }
}

/// Values as Unleash SDKs and browsers send them — numbers in strings, versions with a `v`
/// prefix or as JSON numbers — and dates compared with `$now` are read without allocating.
#[test]
fn lenient_operands_do_not_allocate() {
    let rule = |attribute: &str, op: &str, values: serde_json::Value| {
        serde_json::json!({"clauses": [{"attribute": attribute, "op": op, "values": values}],
            "serve": {"variation": "on"}})
    };
    let ruleset = serde_json::json!({"version": 1, "flags": {"lenient": {
    "type": "boolean",
    "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
    "enabled": true, "off_variation": "off", "fallthrough": {"variation": "off"},
    "rules": [
        rule("age", "gt", serde_json::json!([65])),
        rule("seats", "in", serde_json::json!([10, 20])),
        rule("app_version", "semver_gte", serde_json::json!(["v3.0.0"])),
        rule("build", "semver_gte", serde_json::json!(["3.0.0"])),
        rule("trial_ends_at", "after", serde_json::json!(["$now"])),
    ]}}});
    let ruleset: vexil_core::Ruleset = serde_json::from_value(ruleset).unwrap();
    let snapshot = vexil_core::Snapshot::compile(&ruleset).unwrap();
    let context: vexil_core::Context = serde_json::from_value(serde_json::json!({
        "targetingKey": "user-42", "age": "30", "seats": "15", "app_version": "v2.4",
        "build": 2.1, "trial_ends_at": "2025-12-01T00:00:00Z"
    }))
    .unwrap();
    let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z, after the trial's end.

    let detail = snapshot.evaluate("lenient", &context, now);
    assert_eq!(
        serde_json::to_value(detail.reason.kind).unwrap(),
        "FALLTHROUGH"
    );
    let n = allocations_during(|| {
        std::hint::black_box(snapshot.evaluate("lenient", std::hint::black_box(&context), now));
    });
    assert_eq!(
        n, 0,
        "evaluating lenient operands allocated {n} times in 1000 runs"
    );
}
