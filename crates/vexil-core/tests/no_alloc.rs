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
            std::hint::black_box(snapshot.evaluate(std::hint::black_box(flag), ctx, 0));
        });
        assert_eq!(
            n, 0,
            "evaluating {flag} ({expect_kind}) allocated {n} times in 1000 runs"
        );
    }
}
