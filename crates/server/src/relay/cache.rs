//! The relay's snapshots on disk: the last snapshot document of every environment,
//! so a relay that starts while its upstream is down serves what it last had.
//! Written whole to a temporary file and renamed over the old one, so a crash never
//! leaves half a snapshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use switchyard_core::model::EnvName;
use switchyard_core::sync::SnapshotDocument;

use crate::store::EnvRecord;

/// A snapshot read back from disk, with when it was written.
pub struct Cached {
    /// The environment as it was.
    pub record: EnvRecord,
    /// When it was written (its age tells how old what the relay serves is).
    pub written: SystemTime,
}

/// The directory of snapshot files, `ENV.json` each.
#[derive(Debug, Clone)]
pub struct SnapshotCache {
    dir: PathBuf,
}

impl SnapshotCache {
    /// Snapshots in `dir` (created when the first is written).
    pub fn new(dir: &Path) -> Self {
        SnapshotCache {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, env: &EnvName) -> PathBuf {
        // Environment names are `[a-z0-9_-]` (core's name rule): safe as file names.
        self.dir.join(format!("{env}.json"))
    }

    /// Writes `document` (a snapshot document) as `env`'s.
    pub fn write(&self, env: &EnvName, document: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(env);
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, document)?;
        std::fs::rename(&temporary, &path)
    }

    /// Removes `env`'s snapshot (the environment is gone upstream).
    pub fn remove(&self, env: &EnvName) {
        let _ = std::fs::remove_file(self.path(env));
    }

    /// Every snapshot on disk; an unreadable file is skipped with a warning.
    pub fn read_all(&self) -> Vec<Cached> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut cached = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read(&path) {
                Ok(one) => cached.push(one),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable cached snapshot; skipped");
                }
            }
        }
        cached
    }
}

fn read(path: &Path) -> Result<Cached, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let document: SnapshotDocument = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(Cached {
        record: record(document),
        written,
    })
}

/// The store record of a snapshot document.
pub fn record(document: SnapshotDocument) -> EnvRecord {
    EnvRecord {
        name: document.environment,
        revision: document.revision,
        flags: document.flags,
        segments: document.segments,
    }
}

/// How long ago `time` was (zero for a time in the future).
pub fn age(time: SystemTime) -> Duration {
    SystemTime::now().duration_since(time).unwrap_or_default()
}
