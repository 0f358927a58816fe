//! Tenants: the unit of isolation. Every user, key, setting and event belongs to one.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{
    AuditEntry, MetaError, MetaStore, NewApiKey, NewUser, is_unique_violation, now_millis, outbox,
    query_failed,
};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's id, as events and URLs carry it.
    pub id: String,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl MetaStore {
    /// Creates a tenant; [`MetaError::Conflict`] if the id is taken.
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        audit: &[AuditEntry],
    ) -> Result<Tenant, MetaError> {
        let failed = query_failed("creating a tenant");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let created_at = now_millis();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(created_at)
            .execute(&mut *transaction)
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    MetaError::Conflict(format!("tenant {id:?}"))
                } else {
                    failed(error)
                }
            })?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at,
        })
    }

    /// The tenant with this id.
    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>, MetaError> {
        let failed = query_failed("reading a tenant");
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(&failed)?;
        row.as_ref()
            .map(tenant_from_row)
            .transpose()
            .map_err(failed)
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, MetaError> {
        let failed = query_failed("listing tenants");
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(&failed)?;
        rows.iter()
            .map(tenant_from_row)
            .collect::<Result<_, _>>()
            .map_err(failed)
    }

    /// First start: creates the tenant, its admin user and its first key in one
    /// transaction, unless that tenant exists. Returns `false` (and changes
    /// nothing) when it does, including when another process bootstrapped it a
    /// moment earlier.
    pub async fn bootstrap(
        &self,
        tenant: &Tenant,
        admin: &NewUser,
        key: &NewApiKey,
        audit: &[AuditEntry],
    ) -> Result<bool, MetaError> {
        let failed = query_failed("bootstrapping the first tenant");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        // The default tenant exists from the first start on (tenants are never
        // deleted), so inserting it first tells a fresh database from a used one
        // without reading before writing.
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(tenant.created_at)
        .execute(&mut *transaction)
        .await
        .map_err(&failed)?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        crate::users::insert(&mut transaction, admin).await?;
        crate::keys::insert(&mut transaction, key).await?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(true)
    }
}
