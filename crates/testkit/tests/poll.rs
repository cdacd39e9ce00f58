//! The deadline poller: it returns what the check found once it is done, and fails
//! naming what it waited for and what it saw last.

use std::cell::Cell;
use std::time::Duration;

use switchyard_testkit::{eventually, wait_until};

#[tokio::test]
async fn eventually_returns_the_value_once_the_check_is_done() {
    let polls = Cell::new(0);
    let value = eventually(Duration::from_secs(10), "the third poll", || async {
        polls.set(polls.get() + 1);
        (polls.get() == 3).then_some("ready")
    })
    .await;
    assert_eq!((value, polls.get()), ("ready", 3));
}

#[tokio::test]
#[should_panic(expected = "waiting for a green light; saw red 7")]
async fn eventually_fails_with_what_it_saw_last() {
    eventually(Duration::from_millis(50), "a green light", || async {
        Err::<(), _>("red 7".to_owned())
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "waiting for nothing to happen")]
async fn wait_until_fails_after_its_deadline() {
    wait_until(Duration::from_millis(50), "nothing to happen", || false).await;
}
