//! Usage in both stores: last-use times only go forward, per environment's flags and
//! for tokens.

use switchyard_core::model::EnvName;
use switchyard_server::store::embedded::EmbeddedStore;
use switchyard_server::store::redis::RedisStore;
use switchyard_server::store::{Store, UsageOf};
use switchyard_testkit::redis::RedisProcess;

async fn times_only_go_forward(store: &dyn Store) {
    let prod = EnvName::new("prod");
    let dev = EnvName::new("dev");
    let seen = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    let (prod, dev) = (UsageOf::Flags(&prod), UsageOf::Flags(&dev));
    let writes: [(UsageOf<'_>, &[(&str, u64)]); 6] = [
        (prod, &[("a", 5), ("b", 7)]),
        (prod, &[("a", 3)]),
        (prod, &[("a", 9)]),
        (dev, &[("a", 1)]),
        // Tokens have their own times, even under a name a flag has.
        (UsageOf::Tokens, &[("a", 2), ("ci", 4)]),
        (UsageOf::Tokens, &[("ci", 3)]),
    ];
    for (of, pairs) in writes {
        store.record_usage(of, &seen(pairs)).await.unwrap();
    }
    let sorted = |mut found: Vec<(String, u64)>| {
        found.sort();
        found
    };
    assert_eq!(
        sorted(store.usage(prod).await.unwrap()),
        seen(&[("a", 9), ("b", 7)])
    );
    assert_eq!(store.usage(dev).await.unwrap(), seen(&[("a", 1)]));
    assert_eq!(
        sorted(store.usage(UsageOf::Tokens).await.unwrap()),
        seen(&[("a", 2), ("ci", 4)])
    );
    let none = EnvName::new("none");
    assert!(store.usage(UsageOf::Flags(&none)).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_embedded_store_keeps_the_latest_time() {
    let dir = tempfile::tempdir().unwrap();
    times_only_go_forward(&EmbeddedStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn redis_keeps_the_latest_time() {
    let redis = RedisProcess::start();
    times_only_go_forward(
        &RedisStore::connect(&redis.url(), Default::default())
            .await
            .unwrap(),
    )
    .await;
}
