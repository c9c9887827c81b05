//! Proves that the SDK's boolean, integer and float getters allocate nothing, with an
//! allocator that counts per thread: the snapshot load, the clock and the engine's boolean
//! path are all allocation-free.
#![allow(unsafe_code)] // A GlobalAlloc implementation is unsafe by definition.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use vexil_sdk::Client;

#[path = "../../vexil-core/benches/fixtures/mod.rs"]
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
    f(); // Warm-up: lazily initialised state (e.g. arc-swap's per-thread slots) is not the hot path.
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..1000 {
        f();
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn typed_getters_do_not_allocate() {
    let client = Client::offline_builder()
        .bootstrap_json(fixtures::ruleset_value(0).to_string())
        .build()
        .expect("valid fixture");
    let context = fixtures::context();
    for flag in ["simple", "five-rules", "rollout", "chain-0", "missing"] {
        assert_eq!(
            allocations_during(|| {
                std::hint::black_box(client.bool_value(flag, &context, false));
            }),
            0,
            "bool_value({flag})"
        );
    }
    // A type mismatch falls back to the default without allocating either.
    assert_eq!(
        allocations_during(|| {
            std::hint::black_box(client.int_value("five-rules", &context, 0));
            std::hint::black_box(client.float_value("five-rules", &context, 0.0));
        }),
        0
    );
}
