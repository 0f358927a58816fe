//! Verification anyone can run: a whole trail against its signed checkpoints, or one event
//! against one checkpoint.
//!
//! [`verify_trail`] needs only the events (as canonical bytes, with the sequence number
//! each claims), the checkpoint notes and the server's verifier key. It recomputes the
//! RFC 9162 tree leaf by leaf and compares its root with every checkpoint at that
//! checkpoint's size, and checks that the claimed sequence numbers run 0, 1, 2, … in the
//! order the leaves are stored. The first thing wrong is reported as a
//! [`VerifyReport::Broken`] whose `seq` is the position, in the intact trail, of the first
//! leaf that is not as it should be.

use std::fmt;

use serde_json::Value;

use crate::canonical::canonical_json;
use crate::checkpoint::{Checkpoint, claimed_size};
use crate::error::AuditError;
use crate::merkle::{CompactRange, Hash, leaf_hash, verify_inclusion};
use crate::signing::VerifyingKey;

/// How often [`verify_trail`] reports progress, in leaves.
pub const PROGRESS_INTERVAL: u64 = 4096;

/// What kind of damage [`verify_trail`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// A checkpoint's root differs from the root of the leaves: some leaf's bytes changed
    /// (or leaves were removed, added or reordered and renumbered to hide it).
    Altered,
    /// A sequence number is skipped and never appears: an event was deleted.
    Missing,
    /// A sequence number is skipped here but appears later: events were moved or swapped.
    Reordered,
    /// A sequence number appears twice: an event was copied in (or an extra one inserted).
    Inserted,
    /// The leaves end before the size a checkpoint signs: events were cut off the end.
    Truncated,
    /// A checkpoint note is malformed, not signed by the key, or for another tenant.
    BadSignature,
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakKind::Altered => "altered",
            BreakKind::Missing => "missing",
            BreakKind::Reordered => "reordered",
            BreakKind::Inserted => "inserted",
            BreakKind::Truncated => "truncated",
            BreakKind::BadSignature => "bad signature",
        })
    }
}

/// The outcome of [`verify_trail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every checkpoint is validly signed and matches the leaves, and the sequence numbers
    /// are intact.
    Verified {
        /// How many leaves were read.
        events: u64,
        /// The size of the newest checkpoint (0 without checkpoints). Leaves beyond it,
        /// `events − checkpoint_size` of them, are in order but not yet covered by a
        /// signature: they will be by the next checkpoint.
        checkpoint_size: u64,
    },
    /// The trail is damaged; this is the first damage found.
    Broken {
        /// The position (sequence number in the intact trail) of the first bad leaf; for
        /// [`BreakKind::BadSignature`], the size the bad checkpoint claims (0 if unreadable).
        seq: u64,
        /// What kind of damage.
        kind: BreakKind,
        /// A sentence saying what was found, for people.
        detail: String,
    },
}

impl VerifyReport {
    /// Whether the trail verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, VerifyReport::Verified { .. })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyReport::Verified {
                events,
                checkpoint_size,
            } => {
                write!(
                    f,
                    "verified: {events} events, {checkpoint_size} covered by signed checkpoints"
                )?;
                let uncovered = events - checkpoint_size;
                if uncovered > 0 {
                    write!(
                        f,
                        "; {uncovered} newer events are in order but not yet signed"
                    )?;
                }
                Ok(())
            }
            VerifyReport::Broken { seq, kind, detail } => {
                write!(f, "broken at seq {seq} ({kind}): {detail}")
            }
        }
    }
}

/// One checkpoint note as the verifier sees it: the size it claims, and either the
/// verified checkpoint or why it is not acceptable.
struct Claim {
    size: u64,
    checkpoint: Result<Checkpoint, String>,
}

/// Verifies a whole trail against its signed checkpoints.
///
/// - `leaves`: every leaf in stored order, as `(seq, bytes)`: the sequence number the event
///   claims (its `"seq"` member, which the caller extracts) and its canonical bytes
///   ([`canonical_json`] of the event). An `Err` item stops verification with that error.
/// - `checkpoints`: signed checkpoint notes, in any order.
/// - `key`: the server's verifier key.
/// - `stored_hashes`: optionally, the leaf hashes the store kept (`hashes.bin`), by seq.
///   They are not trusted; they only narrow down which leaf was altered.
/// - `progress`: called with the number of leaves read, every [`PROGRESS_INTERVAL`]
///   leaves and at the end.
///
/// Reports [`VerifyReport::Verified`] or the first [`VerifyReport::Broken`] found, walking
/// the leaves in order and taking each checkpoint when the walk reaches its size:
///
/// - a checkpoint note that is malformed, not validly signed by `key`, or for another tenant
///   than the smallest valid checkpoint: [`BreakKind::BadSignature`] at its claimed size;
/// - a checkpoint whose root is not the root of the leaves so far: [`BreakKind::Altered`]
///   at the first leaf since the previous matching checkpoint whose hash differs from its
///   stored hash, or, without `stored_hashes` or such a leaf, at the previous matching
///   checkpoint's size (the detail says which); if another validly signed checkpoint of
///   the same size does match, the key signed two versions of the trail: `Altered` at that
///   size;
/// - a leaf claiming a smaller seq than its position: [`BreakKind::Inserted`];
/// - a leaf claiming a larger seq than its position: [`BreakKind::Inserted`] if that seq
///   appears again later, else [`BreakKind::Reordered`] if a skipped seq appears later,
///   else [`BreakKind::Missing`] (the rest of the leaves are read to decide);
/// - leaves ending before a checkpoint's size: [`BreakKind::Truncated`] at the number of
///   leaves.
///
/// Cost: one leaf hash per leaf plus amortised one node hash, one root per checkpoint
/// (O(log n) hashes) and one signature check per checkpoint; memory O(log n) besides the
/// checkpoints.
pub fn verify_trail(
    leaves: impl Iterator<Item = Result<(u64, Vec<u8>), AuditError>>,
    checkpoints: &[String],
    key: &VerifyingKey,
    stored_hashes: Option<&dyn Fn(u64) -> Option<Hash>>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let claims = read_claims(checkpoints, key);
    let mut walk = Walk {
        claims: &claims,
        next: 0,
        range: CompactRange::new(),
        last_good: 0,
        first_diff: None,
        stored_hashes,
    };
    if let Some(broken) = walk.take_checkpoints() {
        return Ok(broken);
    }
    let mut leaves = leaves;
    while let Some(item) = leaves.next() {
        let (claimed, bytes) = item?;
        let position = walk.range.size();
        if claimed != position {
            return sequence_break(position, claimed, leaves, progress);
        }
        walk.push(position, &bytes);
        if walk.range.size().is_multiple_of(PROGRESS_INTERVAL) {
            progress(walk.range.size());
        }
        if let Some(broken) = walk.take_checkpoints() {
            return Ok(broken);
        }
    }
    let events = walk.range.size();
    progress(events);
    if let Some(claim) = claims.get(walk.next) {
        // The leaves ended before this checkpoint's size.
        return Ok(match &claim.checkpoint {
            Err(why) => bad_signature(claim.size, why),
            Ok(_) => VerifyReport::Broken {
                seq: events,
                kind: BreakKind::Truncated,
                detail: format!(
                    "the trail ends after {events} events, but a checkpoint signs {} events",
                    claim.size
                ),
            },
        });
    }
    Ok(VerifyReport::Verified {
        events,
        checkpoint_size: walk.last_good,
    })
}

/// Verifies every note and sorts them by the size they claim (bad ones first at a size).
fn read_claims(checkpoints: &[String], key: &VerifyingKey) -> Vec<Claim> {
    let mut claims: Vec<Claim> = checkpoints
        .iter()
        .map(|note| match Checkpoint::verify(note, key) {
            Ok(checkpoint) => Claim {
                size: checkpoint.size,
                checkpoint: Ok(checkpoint),
            },
            Err(error) => Claim {
                size: claimed_size(note).unwrap_or(0),
                checkpoint: Err(error.to_string()),
            },
        })
        .collect();
    claims.sort_by_key(|claim| (claim.size, claim.checkpoint.is_ok()));
    // Every valid checkpoint must be for the same tenant as the first.
    let tenant = claims
        .iter()
        .find_map(|claim| claim.checkpoint.as_ref().ok())
        .map(|checkpoint| checkpoint.tenant.clone());
    if let Some(tenant) = tenant {
        for claim in &mut claims {
            if let Ok(checkpoint) = &claim.checkpoint
                && checkpoint.tenant != tenant
            {
                claim.checkpoint = Err(format!(
                    "it is signed for tenant {:?}, but the trail's first checkpoint is for {tenant:?}",
                    checkpoint.tenant
                ));
            }
        }
    }
    claims
}

/// The tree being rebuilt and the checkpoints still to check against it.
struct Walk<'a> {
    claims: &'a [Claim],
    /// The first claim not yet checked.
    next: usize,
    range: CompactRange,
    /// The size of the last checkpoint that matched (0 before any).
    last_good: u64,
    /// The first leaf since `last_good` whose hash differs from its stored hash.
    first_diff: Option<u64>,
    stored_hashes: Option<&'a dyn Fn(u64) -> Option<Hash>>,
}

impl Walk<'_> {
    /// Adds leaf `seq` (its position) to the tree.
    fn push(&mut self, seq: u64, bytes: &[u8]) {
        let hash = leaf_hash(bytes);
        if self.first_diff.is_none()
            && let Some(stored) = self.stored_hashes
            && stored(seq).is_some_and(|stored| stored != hash)
        {
            self.first_diff = Some(seq);
        }
        self.range.push(hash);
    }

    /// Checks every checkpoint whose size is the current size; the first that fails.
    fn take_checkpoints(&mut self) -> Option<VerifyReport> {
        let size = self.range.size();
        let first = self.next;
        while self.claims.get(self.next).is_some_and(|c| c.size == size) {
            self.next += 1;
        }
        let here = &self.claims[first..self.next];
        // Unacceptable notes sort first at their size.
        match here.first() {
            None => return None,
            Some(Claim {
                checkpoint: Err(why),
                ..
            }) => return Some(bad_signature(size, why)),
            Some(_) => {}
        }
        let root = self.range.root();
        let matching = here
            .iter()
            .filter(|claim| claim.checkpoint.as_ref().is_ok_and(|c| c.root == root))
            .count();
        if matching == here.len() {
            self.last_good = size;
            self.first_diff = None;
            return None;
        }
        if matching > 0 {
            return Some(VerifyReport::Broken {
                seq: size,
                kind: BreakKind::Altered,
                detail: format!(
                    "validly signed checkpoints at size {size} have different roots: the leaves \
                     match one of them, so the key signed conflicting versions of the trail"
                ),
            });
        }
        Some(self.altered(size))
    }

    /// The report for a checkpoint at `size` whose root does not match.
    fn altered(&self, size: u64) -> VerifyReport {
        let last_good = self.last_good;
        let mismatch = format!("the checkpoint at size {size} does not match the leaves");
        let (seq, detail) = match (self.first_diff, self.stored_hashes) {
            (Some(seq), _) => (
                seq,
                format!(
                    "{mismatch}; leaf {seq} is the first since the last matching checkpoint \
                     (size {last_good}) whose hash differs from the stored leaf hash"
                ),
            ),
            (None, Some(_)) => (
                last_good,
                format!(
                    "{mismatch}; the stored leaf hashes agree with the leaves (so they were \
                     changed too), so the first altered leaf is one of seqs {last_good}..{size}, \
                     after the last matching checkpoint"
                ),
            ),
            (None, None) => (
                last_good,
                format!(
                    "{mismatch}; the first altered leaf is one of seqs {last_good}..{size}, \
                     after the last matching checkpoint (no stored hashes to narrow it down)"
                ),
            ),
        };
        VerifyReport::Broken {
            seq,
            kind: BreakKind::Altered,
            detail,
        }
    }
}

/// The report for a checkpoint note that is not acceptable.
fn bad_signature(size: u64, why: &str) -> VerifyReport {
    VerifyReport::Broken {
        seq: size,
        kind: BreakKind::BadSignature,
        detail: format!("the checkpoint claiming size {size} is not acceptable: {why}"),
    }
}

/// Classifies the first leaf whose claimed seq is not its position, reading the rest of
/// the leaves if needed.
fn sequence_break(
    position: u64,
    claimed: u64,
    rest: impl Iterator<Item = Result<(u64, Vec<u8>), AuditError>>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let broken = |kind, detail| {
        Ok(VerifyReport::Broken {
            seq: position,
            kind,
            detail,
        })
    };
    if claimed < position {
        return broken(
            BreakKind::Inserted,
            format!(
                "position {position} holds a second event claiming seq {claimed}: an event was \
                 copied or inserted"
            ),
        );
    }
    // Seqs position..claimed are skipped here. Look for them, and for `claimed` again.
    let mut repeated_at = None;
    let mut skipped_at = None;
    let mut at = position;
    for item in rest {
        let (seq, _) = item?;
        at += 1;
        if at.is_multiple_of(PROGRESS_INTERVAL) {
            progress(at);
        }
        if seq == claimed && repeated_at.is_none() {
            repeated_at = Some((at, seq));
        }
        if (position..claimed).contains(&seq) && skipped_at.is_none() {
            skipped_at = Some((at, seq));
        }
    }
    progress(at + 1);
    match (repeated_at, skipped_at) {
        (Some((later, _)), _) => broken(
            BreakKind::Inserted,
            format!(
                "position {position} holds an event claiming seq {claimed}, which appears \
                 again at position {later}: an event was copied or inserted"
            ),
        ),
        (None, Some((later, seq))) => broken(
            BreakKind::Reordered,
            format!(
                "position {position} holds seq {claimed}, and seq {seq} appears later at \
                 position {later}: events are out of order"
            ),
        ),
        (None, None) if claimed == position + 1 => broken(
            BreakKind::Missing,
            format!("event {position} is missing: position {position} holds seq {claimed}"),
        ),
        (None, None) => broken(
            BreakKind::Missing,
            format!(
                "events {position}..{claimed} are missing: position {position} holds seq \
                 {claimed}"
            ),
        ),
    }
}

/// Checks one event as a client: that `checkpoint_note` is validly signed by `key`, and
/// that `proof` proves the event (as the API returned it) is leaf `index` of that
/// checkpoint's tree. Returns the verified checkpoint.
///
/// The leaf is `leaf_hash(canonical_json(event_json))`. If the event has a `"seq"` member
/// that is an unsigned integer, it must equal `index`.
pub fn verify_event_inclusion(
    event_json: &Value,
    index: u64,
    proof: &[Hash],
    checkpoint_note: &str,
    key: &VerifyingKey,
) -> Result<Checkpoint, AuditError> {
    let checkpoint = Checkpoint::verify(checkpoint_note, key)?;
    if let Some(claimed) = event_json.get("seq").and_then(Value::as_u64)
        && claimed != index
    {
        return Err(AuditError::SeqMismatch { claimed, index });
    }
    let leaf = leaf_hash(&canonical_json(event_json));
    verify_inclusion(&leaf, index, checkpoint.size, proof, &checkpoint.root)?;
    Ok(checkpoint)
}

#[cfg(test)]
mod tests;
