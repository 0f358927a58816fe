//! The audit trails in PostgreSQL: each tenant's audit events numbered
//! without gaps, their leaves and Merkle tree hashes written in the commit's
//! transaction, and the roots and proofs read back from those hashes.
//!
//! One writer per tenant trail at a time: a commit holding audit events of a
//! tenant takes that tenant's advisory lock for the rest of its transaction,
//! reads the trail's size, numbers the events that are not in it yet (an id
//! already there is skipped: the trail is append-only) and writes their
//! leaves, the perfect subtrees they complete and the new size. A commit that
//! fails writes nothing, so the next one takes the same numbers: no gaps,
//! whatever the number of workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use audit::{CompactRange, Hash, LeafHashes, node_hash};
use sqlx::postgres::PgConnection;

use super::compile::stream_code;
use super::errors::engine;
use super::terms::Indexer;
use super::write::{Encoded, encode_one};
use crate::StoreError;

/// The first key of the advisory lock that orders a tenant's appends (and
/// prunes, `audit_expiry.rs`).
pub(crate) const LOCK: i32 = 0x6c6f_6703;

/// A perfect subtree: its level (0 for a leaf) and its index at that level.
pub(crate) type Node = (u32, u64);

/// The perfect subtrees that make up the first `size` leaves, largest first.
pub(crate) fn frontier_nodes(size: u64) -> Vec<Node> {
    (0..64u32)
        .rev()
        .filter(|level| (size >> level) & 1 == 1)
        .map(|level| (level, (size >> level) - 1))
        .collect()
}

fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    Hash::try_from(bytes)
        .map_err(|bytes| StoreError::Corrupt(format!("an audit hash of {} bytes", bytes.len())))
}

/// The hashes of `nodes` of a tenant's tree.
pub(crate) async fn fetch_nodes(
    connection: &mut PgConnection,
    tenant: &str,
    nodes: &BTreeSet<Node>,
) -> Result<HashMap<Node, Hash>, StoreError> {
    let failed = engine("reading audit hashes");
    let (leaves, inner): (Vec<Node>, Vec<Node>) = nodes.iter().partition(|(level, _)| *level == 0);
    let mut found = HashMap::with_capacity(nodes.len());
    if !leaves.is_empty() {
        let seqs: Vec<i64> = leaves.iter().map(|(_, index)| *index as i64).collect();
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM store_audit_leaves WHERE tenant = $1 AND seq = ANY($2)",
        )
        .bind(tenant)
        .bind(&seqs)
        .fetch_all(&mut *connection)
        .await
        .map_err(&failed)?;
        for (seq, hash) in rows {
            found.insert((0, seq as u64), hash_of(hash)?);
        }
    }
    if !inner.is_empty() {
        let levels: Vec<i32> = inner.iter().map(|(level, _)| *level as i32).collect();
        let indexes: Vec<i64> = inner.iter().map(|(_, index)| *index as i64).collect();
        let rows: Vec<(i32, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT n.level, n.index, n.hash FROM store_audit_nodes n \
             JOIN unnest($2::int4[], $3::int8[]) AS w(level, index) \
               ON n.level = w.level AND n.index = w.index \
             WHERE n.tenant = $1",
        )
        .bind(tenant)
        .bind(&levels)
        .bind(&indexes)
        .fetch_all(&mut *connection)
        .await
        .map_err(&failed)?;
        for (level, index, hash) in rows {
            found.insert((level as u32, index as u64), hash_of(hash)?);
        }
    }
    if let Some(missing) = nodes.iter().find(|node| !found.contains_key(node)) {
        return Err(StoreError::Corrupt(format!(
            "the audit trail of {tenant:?} lacks the hash of subtree {missing:?}"
        )));
    }
    Ok(found)
}

/// The frontier of the first `size` leaves of a tenant's tree.
pub(crate) async fn frontier(
    connection: &mut PgConnection,
    tenant: &str,
    size: u64,
) -> Result<CompactRange, StoreError> {
    let nodes = frontier_nodes(size);
    let found = fetch_nodes(connection, tenant, &nodes.iter().copied().collect()).await?;
    let hashes = nodes.iter().map(|node| found[node]).collect();
    CompactRange::from_frontier(size, hashes)
        .map_err(|error| StoreError::Corrupt(format!("audit frontier: {error}")))
}

/// A tree whose perfect subtrees are looked up in what was fetched.
struct Fetched {
    size: u64,
    nodes: HashMap<Node, Hash>,
}

impl LeafHashes for Fetched {
    fn len(&self) -> u64 {
        self.size
    }

    fn leaf(&self, index: u64) -> Hash {
        self.perfect_subtree(0, index)
    }

    fn perfect_subtree(&self, level: u32, index: u64) -> Hash {
        // Every subtree asked for was fetched (see `prove`).
        self.nodes.get(&(level, index)).copied().unwrap_or_default()
    }
}

/// A tree that only notes which perfect subtrees a computation asks for
/// (which ones depends on the sizes alone, never on the hashes).
struct Recorder {
    size: u64,
    wanted: RefCell<BTreeSet<Node>>,
}

impl LeafHashes for Recorder {
    fn len(&self) -> u64 {
        self.size
    }

    fn leaf(&self, index: u64) -> Hash {
        self.perfect_subtree(0, index)
    }

    fn perfect_subtree(&self, level: u32, index: u64) -> Hash {
        self.wanted.borrow_mut().insert((level, index));
        Hash::default()
    }
}

/// Runs `compute` over a tenant's tree of `size` leaves, reading only the
/// subtree hashes it needs: O(log n) rows for a root or a proof.
pub(crate) async fn prove<T>(
    connection: &mut PgConnection,
    tenant: &str,
    size: u64,
    compute: impl Fn(&dyn LeafHashes) -> Result<T, audit::ProofError>,
) -> Result<T, StoreError> {
    let failed = |error: audit::ProofError| StoreError::Corrupt(format!("audit proof: {error}"));
    let recorder = Recorder {
        size,
        wanted: RefCell::new(BTreeSet::new()),
    };
    compute(&recorder).map_err(failed)?;
    let nodes = fetch_nodes(connection, tenant, &recorder.wanted.into_inner()).await?;
    compute(&Fetched { size, nodes }).map_err(failed)
}

/// A trail being appended to: its frontier and the subtrees the new leaves complete.
struct Appender {
    size: u64,
    frontier: Vec<Hash>,
    nodes: Vec<(u32, u64, Hash)>,
}

impl Appender {
    fn push(&mut self, leaf: Hash) {
        let index = self.size;
        let mut hash = leaf;
        let mut level = 0;
        // Leaf `index` completes one subtree per trailing one bit of `index`.
        while (index >> level) & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            self.nodes.push((level, index >> level, hash));
        }
        self.frontier.push(hash);
        self.size += 1;
    }
}

/// Numbers the audit events among `events` in their tenants' trails, inside
/// the commit's transaction on `connection`, and writes their leaves and
/// hashes. Returns the events to store (re-encoded: an audit event is stored
/// as its leaf, with its `seq`); events already in the trail are dropped.
pub(crate) async fn append(
    connection: &mut PgConnection,
    events: Vec<Encoded>,
) -> Result<Vec<Encoded>, StoreError> {
    let failed = engine("appending to an audit trail");
    let mut by_tenant: BTreeMap<String, Vec<model::QueuedEvent>> = BTreeMap::new();
    for event in events {
        if let Some(queued) = event.audit {
            by_tenant.entry(event.tenant).or_default().push(queued);
        }
    }
    let mut indexer = Indexer::new();
    let mut appended = Vec::new();
    // Tenants in order, so two commits never wait for each other's locks in a cycle.
    for (tenant, queued) in by_tenant {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))")
            .bind(LOCK)
            .bind(&tenant)
            .execute(&mut *connection)
            .await
            .map_err(&failed)?;
        let ids: Vec<String> = queued.iter().map(|event| event.event.id.clone()).collect();
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM store_event_ids WHERE tenant = $1 AND stream = $2 AND id = ANY($3)",
        )
        .bind(&tenant)
        .bind(stream_code(model::Stream::Audit))
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await
        .map_err(&failed)?;
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM store_audit_heads WHERE tenant = $1")
                .bind(&tenant)
                .fetch_optional(&mut *connection)
                .await
                .map_err(&failed)?;
        let size = size.unwrap_or(0) as u64;
        let mut trail = Appender {
            size,
            frontier: frontier(connection, &tenant, size)
                .await?
                .frontier()
                .to_vec(),
            nodes: Vec::new(),
        };
        let (mut seqs, mut hashes, mut leaves) = (Vec::new(), Vec::new(), Vec::new());
        for mut incoming in queued {
            if present.contains(&incoming.event.id) {
                continue;
            }
            let seq = trail.size;
            incoming.event.seq = Some(seq);
            let value = serde_json::to_value(&incoming.event).map_err(|error| {
                StoreError::Corrupt(format!("an audit event does not serialise: {error}"))
            })?;
            let leaf = audit::canonical_json(&value);
            let hash = audit::leaf_hash(&leaf);
            trail.push(hash);
            incoming.json = String::from_utf8(leaf.clone())
                .map_err(|_| StoreError::Corrupt("canonical JSON is not UTF-8".to_owned()))?;
            // The trail's sequence is the audit stream's arrival order.
            incoming.arrival = seq;
            let mut encoded = encode_one(&mut indexer, incoming, false);
            encoded.audit = None;
            appended.push(encoded);
            seqs.push(seq as i64);
            hashes.push(hash.to_vec());
            leaves.push(leaf);
        }
        if seqs.is_empty() {
            continue;
        }
        sqlx::query(
            "INSERT INTO store_audit_leaves (tenant, seq, hash, leaf) \
             SELECT $1, * FROM unnest($2::int8[], $3::bytea[], $4::bytea[])",
        )
        .bind(&tenant)
        .bind(&seqs)
        .bind(&hashes)
        .bind(&leaves)
        .execute(&mut *connection)
        .await
        .map_err(&failed)?;
        if !trail.nodes.is_empty() {
            let levels: Vec<i32> = trail.nodes.iter().map(|node| node.0 as i32).collect();
            let indexes: Vec<i64> = trail.nodes.iter().map(|node| node.1 as i64).collect();
            let hashes: Vec<Vec<u8>> = trail.nodes.iter().map(|node| node.2.to_vec()).collect();
            sqlx::query(
                "INSERT INTO store_audit_nodes (tenant, level, index, hash) \
                 SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::bytea[])",
            )
            .bind(&tenant)
            .bind(&levels)
            .bind(&indexes)
            .bind(&hashes)
            .execute(&mut *connection)
            .await
            .map_err(&failed)?;
        }
        sqlx::query(
            "INSERT INTO store_audit_heads (tenant, size) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET size = excluded.size",
        )
        .bind(&tenant)
        .bind(trail.size as i64)
        .execute(&mut *connection)
        .await
        .map_err(&failed)?;
    }
    Ok(appended)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_is_one_subtree_per_set_bit_largest_first() {
        assert_eq!(frontier_nodes(0), []);
        assert_eq!(frontier_nodes(1), [(0, 0)]);
        assert_eq!(frontier_nodes(6), [(2, 0), (1, 2)]);
        assert_eq!(frontier_nodes(7), [(2, 0), (1, 2), (0, 6)]);
    }

    #[test]
    fn appended_subtrees_give_the_roots_and_proofs_of_the_whole_tree() {
        let leaves: Vec<Hash> = (0..37u8).map(|i| audit::leaf_hash(&[i])).collect();
        let mut trail = Appender {
            size: 0,
            frontier: Vec::new(),
            nodes: Vec::new(),
        };
        let mut nodes: HashMap<Node, Hash> = HashMap::new();
        for (index, leaf) in leaves.iter().enumerate() {
            trail.push(*leaf);
            nodes.insert((0, index as u64), *leaf);
        }
        nodes.extend(
            trail
                .nodes
                .iter()
                .map(|(level, index, hash)| ((*level, *index), *hash)),
        );
        let fetched = Fetched { size: 37, nodes };
        for size in [1, 2, 5, 16, 37] {
            assert_eq!(
                audit::root(&fetched, size).unwrap(),
                audit::root(&leaves, size).unwrap()
            );
        }
        assert_eq!(
            audit::inclusion_proof(&fetched, 9, 37).unwrap(),
            audit::inclusion_proof(&leaves, 9, 37).unwrap()
        );
        assert_eq!(
            audit::consistency_proof(&fetched, 13, 37).unwrap(),
            audit::consistency_proof(&leaves, 13, 37).unwrap()
        );
        let frontier = CompactRange::from_frontier(37, trail.frontier.clone()).unwrap();
        assert_eq!(frontier.root(), audit::root(&leaves, 37).unwrap());
    }
}
