//! API keys: credentials of services, with scopes. Only a hash of each key is
//! stored; lookups are by that hash.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::{AuditEntry, MetaError, MetaStore, now_millis, outbox, query_failed};

/// A key to create. The key itself is never stored, only `token_hash`.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The key's public id (`key_…`).
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// A hash of the full key string.
    pub token_hash: String,
    pub scopes: Vec<String>,
    /// Whether requests with this key must be HMAC-signed.
    pub signed: bool,
    /// The user or key that created it, if any (`None` for bootstrap and `logbook admin`).
    pub created_by: Option<String>,
}

/// A stored key, without any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub signed: bool,
    pub created_by: Option<String>,
    /// Unix milliseconds, like the other times.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "id, tenant_id, name, scopes, signed, created_by, created_at, last_used_at, revoked_at";

fn key_from_row(row: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        signed: row.try_get::<i64, _>("signed")? != 0,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts a key inside a caller's transaction.
pub(crate) async fn insert(
    connection: &mut AnyConnection,
    key: &NewApiKey,
) -> Result<ApiKey, MetaError> {
    let failed = query_failed("creating an API key");
    let created_at = now_millis();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, token_hash, scopes, signed, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&key.id)
    .bind(&key.tenant)
    .bind(&key.name)
    .bind(&key.token_hash)
    .bind(key.scopes.join(" "))
    .bind(i64::from(key.signed))
    .bind(created_at)
    .bind(key.created_by.as_deref())
    .execute(&mut *connection)
    .await
    .map_err(|error| {
        if crate::is_unique_violation(&error) {
            MetaError::Conflict("an API key with this value".to_owned())
        } else if crate::is_foreign_key_violation(&error) {
            MetaError::NotFound(format!("no tenant {:?}", key.tenant))
        } else {
            failed(error)
        }
    })?;
    Ok(ApiKey {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        name: key.name.clone(),
        scopes: key.scopes.clone(),
        signed: key.signed,
        created_by: key.created_by.clone(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    })
}

impl MetaStore {
    /// Stores a new key.
    pub async fn create_key(
        &self,
        key: &NewApiKey,
        audit: &[AuditEntry],
    ) -> Result<ApiKey, MetaError> {
        let failed = query_failed("creating an API key");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let created = insert(&mut transaction, key).await?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(created)
    }

    /// The key whose hash is `token_hash`, revoked or not.
    pub async fn key_by_token_hash(&self, token_hash: &str) -> Result<Option<ApiKey>, MetaError> {
        let failed = query_failed("looking up an API key");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref().map(key_from_row).transpose().map_err(failed)
    }

    /// The key with this public id, revoked or not.
    pub async fn key(&self, id: &str) -> Result<Option<ApiKey>, MetaError> {
        let failed = query_failed("looking up an API key");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref().map(key_from_row).transpose().map_err(failed)
    }

    /// The keys of a tenant, oldest first.
    pub async fn keys(&self, tenant: &str) -> Result<Vec<ApiKey>, MetaError> {
        let failed = query_failed("listing API keys");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(&failed)?;
        rows.iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()
            .map_err(failed)
    }

    /// Revokes a key of `tenant` at once. `None` if the tenant has no such key;
    /// revoking a revoked key changes nothing and records nothing.
    pub async fn revoke_key(
        &self,
        tenant: &str,
        id: &str,
        audit: &[AuditEntry],
    ) -> Result<Option<ApiKey>, MetaError> {
        let failed = query_failed("revoking an API key");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(id)
        .bind(tenant)
        .execute(&mut *transaction)
        .await
        .map_err(&failed)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(&failed)?;
        let key = row
            .as_ref()
            .map(key_from_row)
            .transpose()
            .map_err(&failed)?;
        if revoked.rows_affected() > 0 {
            outbox::insert(&mut transaction, audit).await?;
        }
        transaction.commit().await.map_err(&failed)?;
        Ok(key)
    }

    /// Records that a key was used at `at` (Unix milliseconds).
    pub async fn touch_key(&self, id: &str, at: i64) -> Result<(), MetaError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_failed("recording a key's use"))
    }
}
