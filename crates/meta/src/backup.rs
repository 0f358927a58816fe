//! The metadata database's part of a backup: SQLite's own online copy.

use std::path::Path;

use crate::{MetaError, MetaStore, query_failed};

impl MetaStore {
    /// Writes a consistent copy of the SQLite database to `path` (which must
    /// not exist) with `VACUUM INTO`, while other connections go on reading
    /// and writing: the copy is the database as of one transaction. Only for
    /// SQLite; a PostgreSQL metadata store is backed up with `pg_dump`.
    pub async fn copy_sqlite_into(&self, path: &Path) -> Result<(), MetaError> {
        if self.postgres {
            return Err(MetaError::NotFound(
                "the metadata store is PostgreSQL: back it up with pg_dump".to_owned(),
            ));
        }
        let path = path.to_str().ok_or_else(|| {
            MetaError::NotFound(format!("{} is not a UTF-8 path", path.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(query_failed("copying the database for a backup"))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::MetaStore;

    #[tokio::test]
    async fn the_copy_opens_with_what_was_committed() {
        let temp = tempfile::tempdir().unwrap();
        let live = MetaStore::open_sqlite(temp.path()).await.unwrap();
        live.secret_or_insert("backup-test", "kept").await.unwrap();
        let copy = temp.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        live.copy_sqlite_into(&copy.join(crate::SQLITE_FILE))
            .await
            .unwrap();
        live.secret_or_insert("after", "not in the copy")
            .await
            .unwrap();
        let copied = MetaStore::open_sqlite(&copy).await.unwrap();
        let kept = copied
            .secret_or_insert("backup-test", "other")
            .await
            .unwrap();
        assert_eq!(kept, "kept");
        let after = copied.secret_or_insert("after", "fresh").await.unwrap();
        assert_eq!(after, "fresh");
    }
}
