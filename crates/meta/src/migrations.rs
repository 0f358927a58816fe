//! The schema, as an ordered list of migrations shared by SQLite and PostgreSQL.
//!
//! Each migration is a list of statements in the SQL both engines accept:
//! `TEXT` and `BIGINT` columns only (times are Unix milliseconds, flags 0/1),
//! no engine-specific types or auto-increment. A migration's statements and
//! its row in `schema_migrations` commit in one transaction. Statements are
//! idempotent (`IF NOT EXISTS`), so two processes migrating a fresh database at
//! once both succeed.

use sqlx::AnyPool;

use crate::{MetaError, now_millis};

/// One schema step.
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        statements: &[
            "CREATE TABLE IF NOT EXISTS tenants (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            super_admin BIGINT NOT NULL DEFAULT 0,
            disabled BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            password_changed_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS users_by_tenant ON users (tenant_id)",
            "CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            signed BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            created_by TEXT,
            last_used_at BIGINT,
            revoked_at BIGINT
        )",
            "CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id)",
            "CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users (id),
            refresh_hash TEXT NOT NULL UNIQUE,
            previous_refresh_hash TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT
        )",
            "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id)",
            "CREATE INDEX IF NOT EXISTS sessions_by_previous ON sessions (previous_refresh_hash)",
            "CREATE TABLE IF NOT EXISTS settings (
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, name)
        )",
            "CREATE TABLE IF NOT EXISTS server_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS audit_outbox (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            event TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
        ],
    },
    // Security events enter the trail in the order their changes committed: each
    // outbox entry takes the next number of the `audit_outbox` counter inside the
    // change's transaction (see `outbox::insert`), and the drain follows it.
    Migration {
        version: 2,
        statements: &[
            "CREATE TABLE IF NOT EXISTS counters (
            name TEXT PRIMARY KEY,
            value BIGINT NOT NULL
        )",
            "INSERT INTO counters (name, value) VALUES ('audit_outbox', 0)
         ON CONFLICT (name) DO NOTHING",
            // Not idempotent in SQLite (no `ADD COLUMN IF NOT EXISTS`): `migrate`
            // accepts the failure when another process applied this version meanwhile.
            "ALTER TABLE audit_outbox ADD COLUMN seq BIGINT NOT NULL DEFAULT 0",
        ],
    },
    // Alert rules of tenants, and what the evaluator knows of each rule and
    // group: its state, since when, and which state was last delivered.
    Migration {
        version: 3,
        statements: &[
            "CREATE TABLE IF NOT EXISTS alert_rules (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            name TEXT NOT NULL,
            query TEXT NOT NULL,
            threshold BIGINT NOT NULL,
            window_ms BIGINT NOT NULL,
            interval_ms BIGINT NOT NULL,
            group_by TEXT,
            webhook_url TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS alert_rules_by_tenant ON alert_rules (tenant_id)",
            "CREATE TABLE IF NOT EXISTS alert_states (
            rule_id TEXT NOT NULL,
            group_key TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            state TEXT NOT NULL,
            since BIGINT NOT NULL,
            last_count BIGINT NOT NULL,
            changed_at BIGINT NOT NULL,
            notified_state TEXT,
            notified_since BIGINT,
            notified_at BIGINT,
            delivery_error TEXT,
            PRIMARY KEY (rule_id, group_key)
        )",
            "CREATE INDEX IF NOT EXISTS alert_states_by_tenant ON alert_states (tenant_id)",
        ],
    },
    // Single-use tickets of the live tail, shared by every query node.
    Migration {
        version: 4,
        statements: &[
            "CREATE TABLE IF NOT EXISTS tail_tickets (
            hash TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            owner TEXT NOT NULL,
            principal TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS tail_tickets_by_owner ON tail_tickets (owner)",
            "CREATE INDEX IF NOT EXISTS tail_tickets_by_expiry ON tail_tickets (expires_at)",
        ],
    },
];

/// The newest schema version this binary knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// Brings the schema up to [`latest_version`], refusing a database from a newer binary.
pub(crate) async fn migrate(pool: &AnyPool) -> Result<(), MetaError> {
    let failed = |version: i64| move |source| MetaError::Migrate { version, source };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await
    .map_err(failed(0))?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(failed(0))?;
    let current = current.unwrap_or(0);
    if current > latest_version() {
        return Err(MetaError::TooNew {
            found: current,
            known: latest_version(),
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        if let Err(error) = apply(pool, migration).await {
            // Another process may have applied it first (two starts at once).
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(pool)
                    .await
                    .map_err(failed(migration.version))?;
            if applied.is_none() {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Applies one migration and records it, in one transaction.
async fn apply(pool: &AnyPool, migration: &Migration) -> Result<(), MetaError> {
    let failed = |source| MetaError::Migrate {
        version: migration.version,
        source,
    };
    let mut transaction = pool.begin().await.map_err(failed)?;
    for statement in migration.statements {
        sqlx::query(*statement)
            .execute(&mut *transaction)
            .await
            .map_err(failed)?;
    }
    sqlx::query(
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)
         ON CONFLICT (version) DO NOTHING",
    )
    .bind(migration.version)
    .bind(now_millis())
    .execute(&mut *transaction)
    .await
    .map_err(failed)?;
    transaction.commit().await.map_err(failed)?;
    tracing::info!(version = migration.version, "metadata schema migrated");
    Ok(())
}
