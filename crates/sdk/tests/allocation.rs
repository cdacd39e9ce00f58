//! `Client::is_enabled` allocates nothing per call (exposure counting included), on
//! the same 3-rule / 10-constraint fixture the core's allocation test and the
//! benchmarks use. A counting global allocator watches this thread.

use serde_json::json;
use switchyard_sdk::{Client, Context, Transport};
use switchyard_testkit::allocations::{allocations_during, Counting};

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

    // Warm-up: the regex cache, the first sighting of the (flag, variant) counter and
    // of the unknown key `missing` (noted once per flush for the server's unknown flags).
    let first = client.is_enabled("checkout-v3", &ctx);
    assert!(!client.is_enabled("missing", &ctx));
    let mut on = 0;
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            on += usize::from(client.is_enabled("checkout-v3", &ctx));
            on += usize::from(client.is_enabled("missing", &ctx));
        }
    });
    assert_eq!(allocations, 0, "allocations during 2000 is_enabled calls");
    assert_eq!(on, if first { 1000 } else { 0 }, "the answer is stable");

    let control = allocations_during(|| drop(std::hint::black_box(vec![1_u8; 8])));
    assert_eq!(control, 1, "the counter sees allocations");
}
