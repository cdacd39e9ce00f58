//! `Client::is_enabled` allocates nothing per call (exposure counting included), on
//! the same 3-rule / 10-constraint fixture the core's allocation test and the
//! benchmarks use. A counting global allocator watches this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serde_json::json;
use switchyard_sdk::{Client, Context, Transport};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls on this thread.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test]
async fn is_enabled_allocates_nothing_per_call() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/testdata/complex-flag.json"
    )))
    .expect("fixture");
    let document =
        json!({"environment": "bench", "revision": 1, "flags": fixture["flags"], "segments": []});
    let client = Client::builder("http://unused.invalid", "unused")
        .transport(Transport::Offline)
        .bootstrap(document)
        .build()
        .await
        .expect("offline client");
    let ctx: Context = serde_json::from_value(fixture["context"].clone()).expect("context");

    // Warm-up: the regex cache and the first sighting of the (flag, variant) counter.
    let first = client.is_enabled("checkout-v3", &ctx);
    let before = ALLOCATIONS.with(Cell::get);
    let mut on = 0;
    for _ in 0..1000 {
        on += usize::from(client.is_enabled("checkout-v3", &ctx));
        on += usize::from(client.is_enabled("missing", &ctx));
    }
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(allocations, 0, "allocations during 2000 is_enabled calls");
    assert_eq!(on, if first { 1000 } else { 0 }, "the answer is stable");

    let control = ALLOCATIONS.with(Cell::get);
    drop(std::hint::black_box(vec![1_u8; 8]));
    assert_eq!(
        ALLOCATIONS.with(Cell::get) - control,
        1,
        "the counter sees allocations"
    );
}
