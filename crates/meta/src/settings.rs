//! Per-tenant settings: named values an admin changes through the API.

use sqlx::Row as _;

use crate::{AuditEntry, MetaError, MetaStore, now_millis, outbox, query_failed};

impl MetaStore {
    /// The settings a tenant has set, by name.
    pub async fn settings(&self, tenant: &str) -> Result<Vec<(String, String)>, MetaError> {
        let failed = query_failed("reading settings");
        let rows =
            sqlx::query("SELECT name, value FROM settings WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await
                .map_err(&failed)?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("value")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed)
    }

    /// Sets some of a tenant's settings in one transaction; a `None` value
    /// removes the setting (the server's default applies again).
    pub async fn set_settings(
        &self,
        tenant: &str,
        values: &[(String, Option<String>)],
        audit: &[AuditEntry],
    ) -> Result<(), MetaError> {
        let failed = query_failed("changing settings");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let now = now_millis();
        for (name, value) in values {
            let Some(value) = value else {
                sqlx::query("DELETE FROM settings WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(&failed)?;
                continue;
            };
            sqlx::query(
                "INSERT INTO settings (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET value = $3, updated_at = $4",
            )
            .bind(tenant)
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(&failed)?;
        }
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)
    }
}
