//! A global allocator that counts the allocations of each thread, for tests proving a
//! hot path allocates nothing. A test binary installs it and measures a closure with
//! [`allocations_during`]:
//!
//! ```
//! use switchyard_testkit::allocations::{allocations_during, Counting};
//!
//! #[global_allocator]
//! static GLOBAL: Counting = Counting;
//!
//! assert_eq!(allocations_during(|| drop(std::hint::black_box(vec![1_u8; 16]))), 1);
//! assert_eq!(allocations_during(|| drop(std::hint::black_box([1_u8; 16]))), 0);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Defers to the system allocator; counts `alloc` and `realloc` calls per thread.
pub struct Counting;

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

/// How many allocations (and reallocations) this thread made while `f` ran. Only
/// meaningful in a binary whose global allocator is [`Counting`].
pub fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}
