//! Flag usage in both stores: last-evaluated times only go forward, per environment.

use switchyard_core::model::EnvName;
use switchyard_server::store::embedded::EmbeddedStore;
use switchyard_server::store::redis::RedisStore;
use switchyard_server::store::Store;
use switchyard_testkit::redis::RedisProcess;

async fn times_only_go_forward(store: &dyn Store) {
    let prod = EnvName::new("prod");
    let dev = EnvName::new("dev");
    let seen = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    store
        .record_usage(&prod, &seen(&[("a", 5), ("b", 7)]))
        .await
        .unwrap();
    store.record_usage(&prod, &seen(&[("a", 3)])).await.unwrap();
    store.record_usage(&prod, &seen(&[("a", 9)])).await.unwrap();
    store.record_usage(&dev, &seen(&[("a", 1)])).await.unwrap();
    let mut found = store.usage(&prod).await.unwrap();
    found.sort();
    assert_eq!(found, seen(&[("a", 9), ("b", 7)]));
    assert_eq!(store.usage(&dev).await.unwrap(), seen(&[("a", 1)]));
    assert!(store.usage(&EnvName::new("none")).await.unwrap().is_empty());
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
