//! The embedded store: one redb file in the data directory. Each save is one
//! transaction committed with immediate durability (fsync), so a stored transition
//! survives `kill -9`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::{Release, StateStore, StoreError};

/// name → release JSON.
const RELEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("releases");
/// `name@created_at` → finished release JSON.
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");

/// A redb-backed [`StateStore`].
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) `orchestrator.redb` in `dir`, creating the directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::from(redb::StorageError::Io(e)))?;
        let db = Database::create(dir.join("orchestrator.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(RELEASES)?;
        tx.open_table(HISTORY)?;
        tx.commit()?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> {
        let db = self.db.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        }
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Release, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        name: key.to_owned(),
        source,
    })
}

fn encode(release: &Release) -> Vec<u8> {
    // Plans and states are plain data: serialising them cannot fail.
    serde_json::to_vec(release).unwrap_or_default()
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn save(&self, release: &Release) -> Result<(), StoreError> {
        let name = release.name().to_owned();
        let bytes = encode(release);
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            tx.open_table(RELEASES)?
                .insert(name.as_str(), bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn archive(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut releases = tx.open_table(RELEASES)?;
                let Some(old) = releases.remove(name.as_str())? else {
                    return Ok(());
                };
                let bytes = old.value().to_vec();
                drop(old);
                let release = decode(&name, &bytes)?;
                let key = format!("{name}@{:020}", release.created_at);
                tx.open_table(HISTORY)?
                    .insert(key.as_str(), bytes.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn releases(&self) -> Result<Vec<Release>, StoreError> {
        self.blocking(|db| read_all(db, RELEASES)).await
    }

    async fn load(&self, name: &str) -> Result<Option<Release>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(RELEASES)?;
            let found = table.get(name.as_str())?;
            found.map(|v| decode(&name, v.value())).transpose()
        })
        .await
    }

    async fn history(&self) -> Result<Vec<Release>, StoreError> {
        let mut all = self.blocking(|db| read_all(db, HISTORY)).await?;
        all.sort_by_key(|r| r.created_at);
        Ok(all)
    }
}

fn read_all(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<Release>, StoreError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(table)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        out.push(decode(key.value(), value.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::State;
    use crate::plan::Plan;

    fn release(name: &str, created_at: u64) -> Release {
        let plan = Plan::from_yaml(&format!(
            "name: {name}\nenvironment: p\nservices: [{{name: s, flags: [f]}}]\nsteps: [{{weight: 50}}]"
        ))
        .unwrap();
        Release {
            state: State::new(&plan),
            plan,
            created_at,
            revision: 0,
        }
    }

    #[tokio::test]
    async fn saves_reopens_and_archives() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut r = release("a", 1);
        store.save(&r).await.unwrap();
        r.revision = 7;
        store.save(&r).await.unwrap();
        store.save(&release("b", 2)).await.unwrap();
        drop(store);

        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut all = store.releases().await.unwrap();
        all.sort_by(|x, y| x.name().cmp(y.name()));
        assert_eq!(all, vec![r.clone(), release("b", 2)]);

        assert_eq!(store.load("a").await.unwrap(), Some(r.clone()));
        assert_eq!(store.load("z").await.unwrap(), None);
        store.archive("a").await.unwrap();
        store.archive("nothing").await.unwrap();
        assert_eq!(store.releases().await.unwrap(), vec![release("b", 2)]);
        assert_eq!(store.history().await.unwrap(), vec![r]);
    }
}
