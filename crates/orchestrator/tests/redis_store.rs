//! The Redis [`StateStore`] against a real `redis-server`: releases round-trip into
//! history, leases are exclusive until they expire or are given up, a replica that lost
//! its lease can no longer save, stale saves are refused, commands queue in order, and
//! an acknowledged save survives a Redis crash (with `appendfsync always`).

mod support;

use std::time::Duration;

use switchyard_orchestrator::machine::{Event, State};
use switchyard_orchestrator::plan::Plan;
use switchyard_orchestrator::store::redis::RedisStore;
use switchyard_orchestrator::store::{Release, StateStore, StoreError};
use switchyard_testkit::eventually;
use switchyard_testkit::redis::RedisProcess;

/// A lease long enough never to expire during a test.
const LONG: Duration = Duration::from_secs(60);

/// How long a condition that must come true (a lease expiring) may take.
const DEADLINE: Duration = Duration::from_secs(10);

/// Release `name` of a plan whose single step has `weight`.
fn release_with(name: &str, created_at: u64, revision: u64, weight: u32) -> Release {
    let plan = Plan::from_yaml(&format!(
        "name: {name}\nenvironment: p\nservices: [{{name: s, flags: [f]}}]\nsteps: [{{weight: {weight}}}]"
    ))
    .expect("plan parses");
    Release {
        state: State::new(&plan),
        plan,
        created_at,
        revision,
    }
}

fn release(name: &str, created_at: u64, revision: u64) -> Release {
    release_with(name, created_at, revision, 50)
}

async fn store(url: &str, owner: &str) -> RedisStore {
    RedisStore::open(url, owner.to_owned(), Default::default())
        .await
        .expect("redis store opens")
}

#[track_caller]
fn assert_lease_lost(result: Result<(), StoreError>, name: &str, what: &str) {
    match result {
        Err(StoreError::LeaseLost(lost)) => assert_eq!(lost, name, "{what}"),
        other => panic!("{what}: expected LeaseLost({name}), got {other:?}"),
    }
}

async fn releases_round_trip_and_archive_into_history(url: &str) {
    let store = store(url, "a").await;

    // First saves when plans are applied: no lease yet, nothing stored.
    let one = release("one", 2_000, 1);
    store.save(&one).await.expect("first save of one");
    store
        .save(&release("two", 1_000, 1))
        .await
        .expect("first save of two");

    // Later saves need the lease.
    let mut one_v2 = one.clone();
    one_v2.revision = 2;
    assert_lease_lost(
        store.save(&one_v2).await,
        "one",
        "a save without the lease once the release exists",
    );
    assert!(store.acquire("one", "a", LONG).await.unwrap());
    store.save(&one_v2).await.expect("save under the lease");

    assert_eq!(
        store.releases().await.unwrap(),
        vec![one_v2.clone(), release("two", 1_000, 1)]
    );
    assert_eq!(store.load("one").await.unwrap(), Some(one_v2.clone()));
    assert_eq!(store.load("nothing").await.unwrap(), None);
    assert_eq!(store.history().await.unwrap(), vec![]);

    // Archived newest first; history lists oldest first. Queued commands go too.
    store
        .push_command("one", &Event::Pause { by: "ann".into() })
        .await
        .unwrap();
    store.archive("one").await.unwrap();
    store.archive("two").await.unwrap();
    store
        .archive("nothing")
        .await
        .expect("archiving nothing is a no-op");
    assert_eq!(store.releases().await.unwrap(), vec![]);
    assert_eq!(store.load("one").await.unwrap(), None);
    assert_eq!(store.take_commands("one").await.unwrap(), vec![]);
    assert_eq!(
        store.history().await.unwrap(),
        vec![release("two", 1_000, 1), one_v2.clone()]
    );

    // The archived release cannot come back, even under the lease…
    let mut stale = one_v2.clone();
    stale.revision = 3;
    assert_lease_lost(
        store.save(&stale).await,
        "one",
        "a save of an archived release",
    );
    // …but a new release of the same name starts afresh.
    let again = release("one", 3_000, 1);
    store
        .save(&again)
        .await
        .expect("a new release of that name");
    assert_eq!(store.releases().await.unwrap(), vec![again]);
    assert_eq!(store.history().await.unwrap().len(), 2);
}

async fn a_lease_is_exclusive_until_it_expires_and_then_fences_the_old_holder(url: &str) {
    let a = store(url, "a").await;
    let b = store(url, "b").await;

    assert!(a.acquire("r", "a", LONG).await.unwrap(), "a acquires");
    assert!(!b.acquire("r", "b", LONG).await.unwrap(), "b cannot");
    assert!(a.acquire("r", "a", LONG).await.unwrap(), "a renews");
    assert!(!b.acquire("r", "b", LONG).await.unwrap(), "b still cannot");

    // While a holds the lease, b cannot even create the release.
    assert_lease_lost(
        b.save(&release("r", 1_000, 1)).await,
        "r",
        "b creating a release whose lease a holds",
    );
    let mut current = release("r", 1_000, 1);
    a.save(&current).await.expect("a creates");
    current.revision = 2;
    a.save(&current).await.expect("a saves");

    // a renews for a short time and then stops renewing (say it is paused).
    assert!(a
        .acquire("r", "a", Duration::from_millis(300))
        .await
        .unwrap());
    eventually(DEADLINE, "b acquires the expired lease", || async {
        b.acquire("r", "b", LONG).await.unwrap().then_some(())
    })
    .await;

    let mut from_a = current.clone();
    from_a.revision = 3;
    assert_lease_lost(
        a.save(&from_a).await,
        "r",
        "a saving after losing the lease",
    );
    assert!(!a.acquire("r", "a", LONG).await.unwrap(), "a cannot renew");

    let mut from_b = b.load("r").await.unwrap().expect("b loads the release");
    assert_eq!(from_b, current);
    from_b.revision = 3;
    b.save(&from_b).await.expect("b saves under its lease");
    assert_eq!(a.load("r").await.unwrap(), Some(from_b));
}

async fn releasing_a_lease_hands_it_over_at_once(url: &str) {
    let a = store(url, "a").await;
    let b = store(url, "b").await;

    assert!(a.acquire("r", "a", LONG).await.unwrap());
    b.release_lease("r", "b").await.unwrap();
    assert!(
        !b.acquire("r", "b", LONG).await.unwrap(),
        "only the holder can release a lease"
    );

    a.release_lease("r", "a").await.unwrap();
    assert!(
        b.acquire("r", "b", LONG).await.unwrap(),
        "b takes over at once"
    );
    assert!(!a.acquire("r", "a", LONG).await.unwrap());
    a.release_lease("r", "a").await.unwrap();
    assert!(b.acquire("r", "b", LONG).await.unwrap(), "b still holds it");
}

async fn commands_queue_in_order_and_are_taken_once(url: &str) {
    let a = store(url, "a").await;
    let b = store(url, "b").await;
    let commands = vec![
        Event::Pause { by: "ann".into() },
        Event::Resume { by: "bob".into() },
        Event::Approve {
            service: Some("s".into()),
            by: "cy".into(),
        },
        Event::Abort {
            by: "dee".into(),
            reason: "errors".into(),
        },
    ];
    for command in &commands {
        b.push_command("r", command).await.unwrap();
    }
    b.push_command("other", &Event::PromoteFull { by: "eve".into() })
        .await
        .unwrap();

    assert_eq!(a.take_commands("r").await.unwrap(), commands);
    assert_eq!(a.take_commands("r").await.unwrap(), vec![]);
    assert_eq!(
        b.take_commands("other").await.unwrap(),
        vec![Event::PromoteFull { by: "eve".into() }]
    );
}

async fn stale_saves_are_refused_and_a_repeated_save_is_harmless(url: &str) {
    let store = store(url, "a").await;
    assert!(store.acquire("r", "a", LONG).await.unwrap());
    let at_five = release_with("r", 1_000, 5, 50);
    store.save(&at_five).await.unwrap();

    assert_lease_lost(
        store.save(&release_with("r", 1_000, 5, 60)).await,
        "r",
        "another state at the same revision",
    );
    assert_lease_lost(
        store.save(&release_with("r", 1_000, 4, 60)).await,
        "r",
        "a lower revision",
    );
    assert_lease_lost(
        store.save(&release_with("r", 999, 9, 60)).await,
        "r",
        "another release of the same name",
    );
    store
        .save(&at_five)
        .await
        .expect("saving exactly what is stored (a retry) succeeds");
    assert_eq!(store.load("r").await.unwrap(), Some(at_five));

    let at_six = release_with("r", 1_000, 6, 60);
    store.save(&at_six).await.unwrap();
    assert_eq!(store.load("r").await.unwrap(), Some(at_six));
}

switchyard_testkit::on_every_redis!(
    releases_round_trip_and_archive_into_history,
    a_lease_is_exclusive_until_it_expires_and_then_fences_the_old_holder,
    releasing_a_lease_hands_it_over_at_once,
    commands_queue_in_order_and_are_taken_once,
    stale_saves_are_refused_and_a_repeated_save_is_harmless,
);

#[tokio::test]
async fn concurrent_savers_with_one_owner_keep_the_highest_revision() {
    let redis = RedisProcess::start();
    let url = &redis.url();
    // Two connections writing as the same replica (e.g. a save retried while the
    // first attempt is still in flight).
    let first = store(url, "a").await;
    let second = store(url, "a").await;
    assert!(first.acquire("r", "a", LONG).await.unwrap());
    first.save(&release("r", 1_000, 1)).await.unwrap();

    const TOP: u64 = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for revision in 2..=TOP {
        // Interleaved, and the second connection counts down.
        let (store, revision) = if revision % 2 == 0 {
            (first.clone(), revision)
        } else {
            (second.clone(), TOP + 2 - revision)
        };
        tasks.spawn(async move {
            let next = release("r", 1_000, revision);
            match store.save(&next).await {
                Ok(()) => true,
                Err(StoreError::LeaseLost(_)) => false,
                Err(other) => panic!("save of revision {revision}: {other:?}"),
            }
        });
    }
    let stored = tasks.join_all().await.into_iter().filter(|&ok| ok).count();
    assert!(stored >= 1, "at least the highest revision is stored");
    let kept = first.load("r").await.unwrap().expect("stored");
    assert_eq!(kept.revision, TOP);
}

#[tokio::test]
async fn an_acknowledged_save_survives_a_redis_crash_and_the_store_reconnects() {
    let mut redis = RedisProcess::start();
    let url = &redis.url();
    let store = store(url, "a").await;
    assert!(store.acquire("r", "a", LONG).await.unwrap());
    let saved = release("r", 1_000, 1);
    store.save(&saved).await.unwrap();

    redis.stop();
    assert!(
        store.load("r").await.is_err(),
        "Redis is down: the load fails"
    );
    redis.restart();

    assert_eq!(
        store.load("r").await.expect("the store reconnects"),
        Some(saved.clone()),
        "redis-server output:\n{}",
        redis.output()
    );
    assert!(
        store.acquire("r", "a", LONG).await.unwrap(),
        "the lease survived too"
    );
    let mut next = saved;
    next.revision = 2;
    store.save(&next).await.expect("saves after the restart");
}

#[tokio::test]
async fn keys_of_the_earlier_layout_are_renamed_once_and_read_back() {
    let redis = RedisProcess::start();
    let current = release("r", 1_000, 3);
    let archived = release("old", 500, 9);
    let json = |release: &Release| serde_json::to_string(release).expect("JSON");
    // The layout before every key shared `{sy-orch}`.
    for command in [
        vec!["SADD", "sy-orch:releases", "r"],
        vec!["SET", "{sy-orch:r}:release", &json(&current)],
        vec!["SET", "{sy-orch:r}:lease", "a"],
        vec!["ZADD", "sy-orch:history", "500", &json(&archived)],
        vec!["SADD", "{sy-orch:old}:archived", "500"],
    ] {
        redis.command(&command);
    }
    let store = store(&redis.url(), "a").await;
    assert_eq!(store.load("r").await.unwrap(), Some(current.clone()));
    assert_eq!(
        store.releases().await.unwrap(),
        std::slice::from_ref(&current)
    );
    assert_eq!(
        store.history().await.unwrap(),
        std::slice::from_ref(&archived)
    );
    assert!(
        store.acquire("r", "a", LONG).await.unwrap(),
        "the lease came along"
    );
    // The archived marker came along too: the old release cannot be saved again.
    assert!(store.acquire("old", "a", LONG).await.unwrap());
    assert_lease_lost(store.save(&archived).await, "old", "an archived release");
    // Opening again finds nothing left to rename.
    let again = self::store(&redis.url(), "b").await;
    assert_eq!(again.releases().await.unwrap(), [current]);
    assert_eq!(
        redis.command(&["EXISTS", "sy-orch:releases"]),
        switchyard_testkit::redis::Reply::Integer(0)
    );
}
