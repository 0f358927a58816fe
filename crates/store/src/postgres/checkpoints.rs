//! Signed checkpoints of the audit trails in PostgreSQL, and the key that
//! signs them: the key lives in a file beside the process (never in the
//! database, where whoever could rewrite leaves could re-sign them), and the
//! database remembers its public half, so a process with another key is
//! refused instead of starting a second identity.

use std::time::Duration;

use audit::{Checkpoint, SigningKey, VerifyingKey};
use sqlx::PgPool;

use super::errors::engine;
use super::trail;
use crate::StoreError;
use crate::embedded::{CheckpointPolicy, KEY_NAME};

/// Signs and checks a tenant's checkpoints.
pub(crate) struct Signer {
    pub key: SigningKey,
    pub verifying: VerifyingKey,
    pub policy: CheckpointPolicy,
}

impl Signer {
    /// The key in `path` (created if there is none yet).
    pub fn open(path: &std::path::Path, policy: CheckpointPolicy) -> Result<Signer, StoreError> {
        let key = SigningKey::load_or_create(path).map_err(|error| {
            StoreError::Corrupt(format!("audit signing key {}: {error}", path.display()))
        })?;
        let verifying = key
            .verifying_key(KEY_NAME)
            .map_err(|error| StoreError::Corrupt(format!("audit signing key: {error}")))?;
        Ok(Signer {
            key,
            verifying,
            policy,
        })
    }

    /// Records the key's public half the first time; refuses a key other than
    /// the one the database's trails are signed with.
    pub async fn check_identity(&self, pool: &PgPool) -> Result<(), StoreError> {
        let failed = engine("checking the audit signing key");
        let mine = self.verifying.to_text();
        sqlx::query(
            "INSERT INTO store_audit_identity (verifier) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(&mine)
        .execute(pool)
        .await
        .map_err(&failed)?;
        let recorded: String = sqlx::query_scalar("SELECT verifier FROM store_audit_identity")
            .fetch_one(pool)
            .await
            .map_err(&failed)?;
        if recorded != mine {
            return Err(StoreError::Corrupt(format!(
                "the audit trails in this database are signed with the key {recorded}, but this \
                 process has {mine}: give it the same key file as the processes that write the \
                 trails (Logbook does not make a new key for existing trails)"
            )));
        }
        Ok(())
    }

    /// Checks every tenant's newest checkpoint against its trail: it must
    /// verify and sign a prefix of what is stored, or nothing is appended to
    /// a trail that lost or changed signed events.
    pub async fn check_trails(&self, pool: &PgPool) -> Result<(), StoreError> {
        let failed = engine("checking the audit trails");
        let latest: Vec<(String, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT DISTINCT ON (c.tenant) c.tenant, c.size, c.note, h.size \
             FROM store_audit_checkpoints c LEFT JOIN store_audit_heads h ON h.tenant = c.tenant \
             ORDER BY c.tenant, c.size DESC",
        )
        .fetch_all(pool)
        .await
        .map_err(&failed)?;
        let mut connection = pool.acquire().await.map_err(&failed)?;
        for (tenant, size, note, stored) in latest {
            let checkpoint = Checkpoint::verify(&note, &self.verifying).map_err(|error| {
                StoreError::Corrupt(format!(
                    "the newest checkpoint of {tenant:?} does not verify with the signing key \
                     ({error}): the key or the checkpoints were replaced"
                ))
            })?;
            let stored = stored.unwrap_or(0) as u64;
            if checkpoint.size != size as u64 || checkpoint.size > stored {
                return Err(StoreError::Corrupt(format!(
                    "the trail of {tenant:?} holds {stored} events but a checkpoint signed {}: \
                     signed events are missing; restore them from a backup",
                    checkpoint.size
                )));
            }
            let root = trail::frontier(&mut connection, &tenant, checkpoint.size)
                .await?
                .root();
            if root != checkpoint.root {
                return Err(StoreError::Corrupt(format!(
                    "the trail of {tenant:?} does not match its newest signed checkpoint (size {}); \
                     run `logbook verify` to find the altered events",
                    checkpoint.size
                )));
            }
        }
        Ok(())
    }

    /// Signs a checkpoint for every trail the policy says is due: with new
    /// events and either `every_events` of them or `interval` since the last
    /// checkpoint (or none yet). Two processes signing the same size at once
    /// keep the first.
    pub async fn sign_due(&self, pool: &PgPool) -> Result<(), StoreError> {
        let failed = engine("signing audit checkpoints");
        let interval = self.policy.interval.max(Duration::from_millis(1));
        let due: Vec<(String, i64)> = sqlx::query_as(
            "SELECT h.tenant, h.size FROM store_audit_heads h \
             LEFT JOIN LATERAL (SELECT size, signed_at FROM store_audit_checkpoints c \
                 WHERE c.tenant = h.tenant ORDER BY size DESC LIMIT 1) c ON true \
             WHERE h.size > coalesce(c.size, 0) \
               AND (c.size IS NULL OR h.size - c.size >= $1 \
                    OR c.signed_at <= now() - $2::float8 * interval '1 microsecond')",
        )
        .bind(self.policy.every_events.min(i64::MAX as u64) as i64)
        .bind(interval.as_micros().min(i64::MAX as u128) as i64)
        .fetch_all(pool)
        .await
        .map_err(&failed)?;
        if due.is_empty() {
            return Ok(());
        }
        let mut connection = pool.acquire().await.map_err(&failed)?;
        for (tenant, size) in due {
            let size = size as u64;
            let root = trail::frontier(&mut connection, &tenant, size)
                .await?
                .root();
            let note = Checkpoint {
                tenant: tenant.clone(),
                size,
                root,
                time: unix_now(),
            }
            .sign(&self.key, KEY_NAME)
            .map_err(|error| StoreError::Corrupt(format!("signing a checkpoint: {error}")))?;
            sqlx::query(
                "INSERT INTO store_audit_checkpoints (tenant, size, note) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&tenant)
            .bind(size as i64)
            .bind(&note)
            .execute(&mut *connection)
            .await
            .map_err(&failed)?;
        }
        Ok(())
    }
}

/// Unix seconds now, for a checkpoint's `time` line.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
