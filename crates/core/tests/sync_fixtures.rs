//! The sync documents are read and written byte for byte as the server wrote them
//! before they were typed: `tests/fixtures/sync/` holds documents captured from that
//! server (a snapshot, a change with flag and segment writes and deletes, and the
//! Redis announcement carrying that change).

use switchyard_core::sync::{
    ChangeDocument, ChangeDocumentRef, SnapshotDocument, SnapshotDocumentRef,
};
use switchyard_core::Snapshot;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sync/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn a_snapshot_document_round_trips_byte_for_byte() {
    let text = fixture("snapshot.json");
    let document: SnapshotDocument = serde_json::from_str(&text).expect("decodes");
    assert_eq!(document.environment.as_str(), "production");
    assert_eq!(document.revision, 2);
    assert_eq!(serde_json::to_string(&document).expect("encodes"), text);

    // The server writes it from its compiled snapshot.
    let snapshot =
        Snapshot::compile(document.flags.clone(), document.segments.clone()).expect("compiles");
    let borrowed = SnapshotDocumentRef::new(&document.environment, 2, &snapshot);
    assert_eq!(serde_json::to_string(&borrowed).expect("encodes"), text);
}

#[test]
fn a_change_document_round_trips_byte_for_byte() {
    let text = fixture("change.json");
    let change: ChangeDocument = serde_json::from_str(&text).expect("decodes");
    assert_eq!(change.revision, 2);
    assert_eq!(change.flags.len(), 2);
    assert_eq!(change.deleted_flags.len(), 1);
    assert_eq!(change.segments.len(), 1);
    assert_eq!(change.deleted_segments.len(), 1);
    assert_eq!(serde_json::to_string(&change).expect("encodes"), text);

    // The server writes it from the writes it commits.
    let environment = change.environment.clone();
    let (flags, segments) = change.into_writes();
    let borrowed = ChangeDocumentRef::new(&environment, 2, &flags, &segments);
    assert_eq!(serde_json::to_string(&borrowed).expect("encodes"), text);
}

#[test]
fn the_change_applied_to_the_previous_snapshot_gives_the_next() {
    let change: ChangeDocument = serde_json::from_str(&fixture("change.json")).expect("decodes");
    let next: SnapshotDocument = serde_json::from_str(&fixture("snapshot.json")).expect("decodes");
    // The change rewrote both flags of the next snapshot and its one segment, so
    // applied to an empty environment it gives that snapshot.
    let applied = change
        .applied_to(&Snapshot::compile([], []).expect("empty"))
        .expect("compiles");
    assert_eq!(applied.flags().cloned().collect::<Vec<_>>(), next.flags);
    assert_eq!(
        applied.segments().cloned().collect::<Vec<_>>(),
        next.segments
    );
}

#[test]
fn the_announcement_embeds_the_change_document_unchanged() {
    let announcement: serde_json::Value =
        serde_json::from_str(&fixture("announcement.json")).expect("decodes");
    let change: ChangeDocument =
        serde_json::from_value(announcement["change"].clone()).expect("a change document");
    assert_eq!(
        serde_json::to_string(&change).expect("encodes"),
        fixture("change.json")
    );
}
