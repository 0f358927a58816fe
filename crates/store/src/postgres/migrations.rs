//! The PostgreSQL store's tables, created and upgraded at open: numbered
//! migrations applied in order, each once, under an advisory lock so that
//! processes starting at once over the same database never race.

use sqlx::{Executor as _, PgPool};

use super::errors::engine;
use crate::StoreError;

/// The first key of the advisory lock that migrations take (the second is the
/// schema's hash, so stores in different schemas do not wait for each other).
const LOCK: i32 = 0x6c6f_6701;

/// Every migration, in the order applied. Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, EVENTS),
    (2, AUDIT),
    (3, QUEUE_OFFSETS),
    (4, AUDIT_PRUNING),
];

/// The events, their ids, the lexicon of prefixable terms, the attribute paths
/// each tenant's streams hold, event counts and the queue position.
const EVENTS: &str = r#"
CREATE TABLE store_events (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    ts bigint NOT NULL,
    arrival bigint NOT NULL,
    id text COLLATE "C" NOT NULL,
    service text COLLATE "C",
    level smallint NOT NULL,
    terms tsvector NOT NULL,
    nums jsonb,
    doc text NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX store_events_order ON store_events (tenant, stream, ts, arrival);
CREATE INDEX store_events_terms ON store_events USING gin (terms);

CREATE TABLE store_event_ids (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    id text COLLATE "C" NOT NULL,
    ts bigint NOT NULL,
    arrival bigint NOT NULL,
    replaced_ts bigint,
    replaced_arrival bigint,
    PRIMARY KEY (tenant, stream, id)
);

CREATE TABLE store_lexicon (
    lexeme text COLLATE "C" PRIMARY KEY
);

CREATE TABLE store_fields (
    tenant text COLLATE "C" NOT NULL,
    stream smallint NOT NULL,
    path text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, stream, path)
);

CREATE TABLE store_counts (
    shard integer PRIMARY KEY,
    events bigint NOT NULL
);

CREATE TABLE store_position (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position bigint
);
INSERT INTO store_position (singleton, position) VALUES (true, NULL);
"#;

/// The audit trails: each tenant's leaves in sequence (the canonical JSON of
/// each audit event, and its RFC 9162 leaf hash), the hashes of the perfect
/// subtrees above them (so roots and proofs read O(log n) rows), each trail's
/// size, its signed checkpoints and the key that signs them. Rows are only
/// ever inserted: a trigger refuses any UPDATE, DELETE or TRUNCATE of them
/// (the size row, `store_audit_heads`, is the one that changes). A role that
/// may only append, for the worker, is:
///
/// ```sql
/// GRANT SELECT, INSERT ON store_audit_leaves, store_audit_nodes, store_audit_checkpoints TO logbook_worker;
/// GRANT SELECT, INSERT, UPDATE ON store_audit_heads TO logbook_worker;
/// ```
const AUDIT: &str = r#"
CREATE TABLE store_audit_leaves (
    tenant text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    leaf bytea NOT NULL,
    PRIMARY KEY (tenant, seq)
);

CREATE TABLE store_audit_nodes (
    tenant text COLLATE "C" NOT NULL,
    level integer NOT NULL,
    index bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (tenant, level, index)
);

CREATE TABLE store_audit_heads (
    tenant text COLLATE "C" PRIMARY KEY,
    size bigint NOT NULL
);

CREATE TABLE store_audit_checkpoints (
    tenant text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    note text NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, size)
);

CREATE TABLE store_audit_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    verifier text NOT NULL
);

CREATE FUNCTION store_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER store_audit_leaves_append_only BEFORE UPDATE OR DELETE ON store_audit_leaves
    FOR EACH ROW EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_leaves_no_truncate BEFORE TRUNCATE ON store_audit_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_nodes_append_only BEFORE UPDATE OR DELETE ON store_audit_nodes
    FOR EACH ROW EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_nodes_no_truncate BEFORE TRUNCATE ON store_audit_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON store_audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_checkpoints_no_truncate BEFORE TRUNCATE ON store_audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION store_audit_append_only();
CREATE TRIGGER store_audit_identity_append_only BEFORE UPDATE OR DELETE ON store_audit_identity
    FOR EACH ROW EXECUTE FUNCTION store_audit_append_only();
"#;

/// For partitioned queues (Kafka): the next offset to read of each partition
/// of a topic, upserted in the transaction of the commit that stored the
/// records before it.
const QUEUE_OFFSETS: &str = r#"
CREATE TABLE queue_offsets (
    topic text COLLATE "C" NOT NULL,
    partition integer NOT NULL,
    next bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
"#;

/// Audit retention: the oldest leaves of a trail may lose their bodies
/// (`leaf` set to NULL) and keep their hashes; each trail's head counts how
/// many, from the first, are pruned. The leaves' trigger now lets exactly that
/// update through, and still refuses every other UPDATE, DELETE or TRUNCATE.
/// The process that expires audit events also needs:
///
/// ```sql
/// GRANT UPDATE (leaf) ON store_audit_leaves TO logbook_worker;
/// GRANT DELETE ON store_events TO logbook_worker;
/// ```
const AUDIT_PRUNING: &str = r#"
ALTER TABLE store_audit_leaves ALTER COLUMN leaf DROP NOT NULL;
ALTER TABLE store_audit_heads ADD COLUMN pruned bigint NOT NULL DEFAULT 0;

CREATE FUNCTION store_audit_leaves_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.leaf IS NULL AND NEW.tenant = OLD.tenant
        AND NEW.seq = OLD.seq AND NEW.hash = OLD.hash THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only (a leaf''s body may only be pruned): % on % is refused',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER store_audit_leaves_append_only ON store_audit_leaves;
CREATE TRIGGER store_audit_leaves_append_only BEFORE UPDATE OR DELETE ON store_audit_leaves
    FOR EACH ROW EXECUTE FUNCTION store_audit_leaves_prune_only();
"#;

/// Brings the schema up to date; safe to run from many processes at once.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let failed = engine("migrating the store's tables");
    let mut tx = pool.begin().await.map_err(&failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(LOCK)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS store_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(&failed)?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM store_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(&failed)?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.execute(*sql).await.map_err(&failed)?;
        sqlx::query("INSERT INTO store_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
    }
    if let Some(newest) = applied.iter().max()
        && MIGRATIONS.iter().all(|(version, _)| version < newest)
    {
        return Err(StoreError::Corrupt(format!(
            "the store's tables are at version {newest}, newer than this program knows; run a newer Logbook"
        )));
    }
    tx.commit().await.map_err(&failed)
}
