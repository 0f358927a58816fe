//! Login sessions: one per login, holding the hash of its current refresh token.
//!
//! A refresh rotates the token: the new hash replaces the current one, which is
//! kept as `previous_refresh_hash`. A client presenting that previous token
//! again means the token leaked (or a client raced itself); the whole session is
//! revoked, which also ends every access token carrying its id.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::users::user_from_row;
use crate::{MetaError, MetaStore, User, query_failed};

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub refresh_hash: String,
    /// When the refresh token stops working, Unix milliseconds.
    pub expires_at: i64,
}

/// A session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: User,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was current; it is replaced by the new one.
    Rotated(Session),
    /// The token was already used once; the session is now revoked.
    Reused(Session),
    /// No live session has this token.
    Invalid,
}

const SESSION_COLUMNS: &str = "s.id AS session_id, s.expires_at, s.revoked_at, \
     u.id, u.tenant_id, u.username, u.role, u.super_admin, u.disabled, u.created_at";

fn session_from_row(row: &AnyRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("session_id")?,
        user: user_from_row(row)?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Revokes every live session of a user but `except`, inside a caller's transaction.
pub(crate) async fn revoke_user(
    connection: &mut AnyConnection,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1
         WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3",
    )
    .bind(now)
    .bind(user_id)
    .bind(except.unwrap_or(""))
    .execute(&mut *connection)
    .await
    .map(|_| ())
    .map_err(query_failed("revoking sessions"))
}

impl MetaStore {
    /// Stores a new session.
    pub async fn create_session(&self, session: &NewSession, now: i64) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.refresh_hash)
        .bind(now)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_failed("creating a session"))
    }

    /// The session with this id and its user, live or not.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, MetaError> {
        let failed = query_failed("reading a session");
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        row.as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(failed)
    }

    /// Exchanges a live session's current refresh token for a new one.
    pub async fn rotate_refresh(
        &self,
        presented_hash: &str,
        new_hash: &str,
        new_expires_at: i64,
        now: i64,
    ) -> Result<RefreshOutcome, MetaError> {
        let failed = query_failed("refreshing a session");
        let mut transaction = self.pool.begin().await.map_err(&failed)?;
        let rotated = sqlx::query(
            "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = $1, expires_at = $2
             WHERE refresh_hash = $3 AND revoked_at IS NULL AND expires_at > $4",
        )
        .bind(new_hash)
        .bind(new_expires_at)
        .bind(presented_hash)
        .bind(now)
        .execute(&mut *transaction)
        .await
        .map_err(&failed)?;
        let lookup = |column: &str| {
            format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.{column} = $1"
            )
        };
        let outcome = if rotated.rows_affected() == 1 {
            let row = sqlx::query(AssertSqlSafe(lookup("refresh_hash")))
                .bind(new_hash)
                .fetch_one(&mut *transaction)
                .await
                .map_err(&failed)?;
            RefreshOutcome::Rotated(session_from_row(&row).map_err(&failed)?)
        } else {
            let row = sqlx::query(AssertSqlSafe(lookup("previous_refresh_hash")))
                .bind(presented_hash)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(&failed)?;
            match row {
                Some(row) => {
                    let mut session = session_from_row(&row).map_err(&failed)?;
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(&session.id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(&failed)?;
                    session.revoked_at.get_or_insert(now);
                    RefreshOutcome::Reused(session)
                }
                None => RefreshOutcome::Invalid,
            }
        };
        transaction.commit().await.map_err(&failed)?;
        Ok(outcome)
    }

    /// Revokes one session (logout). Returns whether it was live.
    pub async fn revoke_session(&self, id: &str, now: i64) -> Result<bool, MetaError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(query_failed("revoking a session"))
    }
}
