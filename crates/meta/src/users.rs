//! Users: people who log in with a password. Each belongs to one tenant and has
//! one role there; a super-admin also manages tenants.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::{
    AuditEntry, MetaError, MetaStore, is_unique_violation, now_millis, outbox, query_failed,
};

/// A user to create. The password arrives already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub tenant: String,
    pub username: String,
    /// An Argon2id PHC string.
    pub password_hash: String,
    pub role: String,
    pub super_admin: bool,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant: String,
    pub username: String,
    pub role: String,
    pub super_admin: bool,
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A user with the stored password hash, for logging in.
#[derive(Debug, Clone)]
pub struct UserWithPassword {
    pub user: User,
    pub password_hash: String,
}

const USER_COLUMNS: &str =
    "id, tenant_id, username, role, super_admin, disabled, created_at, password_hash";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        username: row.try_get("username")?,
        role: row.try_get("role")?,
        super_admin: row.try_get::<i64, _>("super_admin")? != 0,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn with_password(row: &AnyRow) -> Result<UserWithPassword, sqlx::Error> {
    Ok(UserWithPassword {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
    })
}

/// Inserts a user inside a caller's transaction.
pub(crate) async fn insert(
    connection: &mut AnyConnection,
    user: &NewUser,
) -> Result<User, MetaError> {
    let failed = query_failed("creating a user");
    let created_at = now_millis();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, username, password_hash, role, super_admin, disabled,
                            created_at, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
    )
    .bind(&user.id)
    .bind(&user.tenant)
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(&user.role)
    .bind(i64::from(user.super_admin))
    .bind(created_at)
    .execute(&mut *connection)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            MetaError::Conflict(format!("user {:?}", user.username))
        } else if crate::is_foreign_key_violation(&error) {
            MetaError::NotFound(format!("no tenant {:?}", user.tenant))
        } else {
            failed(error)
        }
    })?;
    Ok(User {
        id: user.id.clone(),
        tenant: user.tenant.clone(),
        username: user.username.clone(),
        role: user.role.clone(),
        super_admin: user.super_admin,
        disabled: false,
        created_at,
    })
}

impl MetaStore {
    /// Creates a user; [`MetaError::Conflict`] if the username is taken anywhere,
    /// [`MetaError::NotFound`] if the tenant does not exist.
    pub async fn create_user(
        &self,
        user: &NewUser,
        audit: &[AuditEntry],
    ) -> Result<User, MetaError> {
        let failed = query_failed("creating a user");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let created = insert(&mut transaction, user).await?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(created)
    }

    /// The user with this username (usernames are unique across tenants, so a
    /// login needs no tenant).
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserWithPassword>, MetaError> {
        let failed = query_failed("reading a user");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref().map(with_password).transpose().map_err(failed)
    }

    /// The user with this id.
    pub async fn user(&self, id: &str) -> Result<Option<UserWithPassword>, MetaError> {
        let failed = query_failed("reading a user");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref().map(with_password).transpose().map_err(failed)
    }

    /// The users of a tenant, by username.
    pub async fn users(&self, tenant: &str) -> Result<Vec<User>, MetaError> {
        let failed = query_failed("listing users");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY username"
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(&failed)?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(failed)
    }

    /// Changes a user's role and/or disables or re-enables it. Disabling revokes
    /// every session of the user. `None` if the tenant has no such user.
    pub async fn update_user(
        &self,
        tenant: &str,
        id: &str,
        role: Option<&str>,
        disabled: Option<bool>,
        audit: &[AuditEntry],
    ) -> Result<Option<User>, MetaError> {
        let failed = query_failed("updating a user");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let now = now_millis();
        if let Some(role) = role {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(role)
                .bind(id)
                .bind(tenant)
                .execute(&mut *transaction)
                .await
                .map_err(&failed)?;
        }
        if let Some(disabled) = disabled {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(i64::from(disabled))
                .bind(id)
                .bind(tenant)
                .execute(&mut *transaction)
                .await
                .map_err(&failed)?;
            if disabled {
                crate::sessions::revoke_user(&mut transaction, id, None, now).await?;
            }
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(&failed)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = user_from_row(&row).map_err(&failed)?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)?;
        Ok(Some(user))
    }

    /// Replaces a user's password hash and revokes every session but `keep_session`.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        audit: &[AuditEntry],
    ) -> Result<(), MetaError> {
        let failed = query_failed("changing a password");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let now = now_millis();
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(&failed)?;
        crate::sessions::revoke_user(&mut transaction, user_id, keep_session, now).await?;
        outbox::insert(&mut transaction, audit).await?;
        transaction.commit().await.map_err(&failed)
    }
}
