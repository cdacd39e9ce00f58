//! The Redis announcement keeps the byte format replicas read, with the change
//! document embedded as written (fixtures captured from the server before the sync
//! documents were typed: `crates/core/tests/fixtures/sync/`).

use switchyard_core::model::EnvName;
use switchyard_core::sync::ChangeDocument;
use switchyard_server::store::redis::{commit_message, Announcement};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../core/tests/fixtures/sync/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn a_commit_announcement_is_written_byte_for_byte_as_before() {
    let message = commit_message(
        &EnvName::new("production"),
        2,
        fixture("change.json").as_bytes(),
    )
    .expect("a JSON change document");
    assert_eq!(message, fixture("announcement.json"));
}

#[test]
fn a_replica_reads_the_typed_change_and_republishes_the_same_bytes() {
    let announcement: Announcement =
        serde_json::from_str(&fixture("announcement.json")).expect("decodes");
    let Announcement::Commit {
        env,
        revision,
        change,
    } = announcement
    else {
        panic!("not a commit: {announcement:?}");
    };
    assert_eq!((env.as_str(), revision), ("production", 2));
    let expected: ChangeDocument = serde_json::from_str(&fixture("change.json")).expect("decodes");
    assert_eq!(change, expected);
    // What the replica's SSE and gRPC clients receive.
    assert_eq!(
        serde_json::to_string(&change).expect("encodes"),
        fixture("change.json")
    );
}

#[test]
fn a_change_document_that_is_not_json_is_refused_not_announced_broken() {
    let error = commit_message(&EnvName::new("production"), 2, b"{not json").expect_err("not JSON");
    assert!(error.to_string().contains("production@2"), "{error}");
}

#[test]
fn other_announcements_keep_their_shape() {
    for text in [
        r#"{"kind":"env_created","env":"dev"}"#,
        r#"{"kind":"env_deleted","env":"old"}"#,
        r#"{"kind":"tokens"}"#,
    ] {
        let announcement: Announcement = serde_json::from_str(text).expect("decodes");
        assert_eq!(serde_json::to_string(&announcement).expect("encodes"), text);
    }
}
