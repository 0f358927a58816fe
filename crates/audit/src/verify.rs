//! Verification anyone can run: a whole trail against its signed checkpoints, or one event
//! against one checkpoint.
//!
//! [`verify_trail`] needs only the events (as canonical bytes), the checkpoint notes, the
//! server's verifier key and the tenant being verified (optionally also a checkpoint seen
//! earlier). It recomputes the RFC 9162 tree leaf by leaf and compares its root with every
//! checkpoint at that checkpoint's size, and checks that the sequence numbers the events
//! claim run 0, 1, 2, … in the order the leaves are stored and that every checkpoint and
//! event belongs to the tenant. The first thing wrong is reported as a
//! [`VerifyReport::Broken`] whose `seq` is the position, in the intact trail, of the first
//! leaf that is not as it should be.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::canonical::canonical_json;
use crate::checkpoint::{Checkpoint, claimed_size};
use crate::error::AuditError;
use crate::merkle::{CompactRange, Hash, leaf_hash, verify_inclusion};
use crate::signing::VerifyingKey;

/// How often [`verify_trail`] reports progress, in leaves.
pub const PROGRESS_INTERVAL: u64 = 4096;

/// A leaf as [`verify_trail`] reads it: its bytes, or, for a pruned leaf, only the leaf hash
/// the trail kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// The leaf's canonical bytes.
    Body(Vec<u8>),
    /// The recorded leaf hash of a leaf whose body was pruned. Only the oldest leaves are
    /// pruned, so these come first.
    Pruned(Hash),
}

impl From<Vec<u8>> for Leaf {
    fn from(bytes: Vec<u8>) -> Leaf {
        Leaf::Body(bytes)
    }
}

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
    /// A checkpoint note is malformed or not signed by the key.
    BadSignature,
    /// A checkpoint (by its origin) or an event (by its `"tenant"`) belongs to another
    /// tenant than the one being verified: a trail was relabelled or copied over.
    WrongTenant,
    /// Leaves follow the newest checkpoint where nothing may (an export ends at its
    /// checkpoint): they were added after it was signed.
    BeyondCheckpoint,
    /// The trail ends before the size of the trusted checkpoint: events the key signed
    /// earlier are gone.
    RolledBack,
    /// The trail matches its own checkpoints, but its first leaves are not the ones the
    /// trusted checkpoint signs: the key signed two different histories.
    Forked,
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
            BreakKind::WrongTenant => "wrong tenant",
            BreakKind::BeyondCheckpoint => "beyond the checkpoint",
            BreakKind::RolledBack => "rolled back",
            BreakKind::Forked => "forked",
        })
    }
}

/// The outcome of [`verify_trail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every checkpoint is validly signed and matches the leaves, and the sequence numbers
    /// and tenants are intact.
    Verified {
        /// How many leaves were read, pruned ones included.
        events: u64,
        /// How many of them, from the first, were pruned: checked by their recorded hashes
        /// (against every checkpoint), their bodies gone.
        pruned: u64,
        /// How many leaves signed checkpoints cover: the size of the newest checkpoint (or
        /// of the trusted one, if larger; 0 without checkpoints). Leaves beyond it,
        /// `events − checkpoint_size` of them, are in order but not yet covered by a
        /// signature: they will be by the next checkpoint.
        checkpoint_size: u64,
        /// The size of the trusted checkpoint the trail was found to extend, if one was
        /// given.
        trusted: Option<u64>,
    },
    /// The trail is damaged; this is the first damage found.
    Broken {
        /// The position (sequence number in the intact trail) of the first bad leaf; for
        /// [`BreakKind::BadSignature`] and a checkpoint's [`BreakKind::WrongTenant`], the
        /// size the bad checkpoint claims (0 if unreadable); for [`BreakKind::RolledBack`]
        /// the number of leaves; for [`BreakKind::Forked`] the trusted checkpoint's size.
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
                pruned,
                checkpoint_size,
                trusted,
            } => {
                write!(f, "verified: {events} events, ")?;
                if *pruned > 0 {
                    write!(f, "the first {pruned} pruned (hashes only), ")?;
                }
                write!(f, "{checkpoint_size} covered by signed checkpoints")?;
                if let Some(trusted) = trusted {
                    write!(f, "; extends the trusted checkpoint of size {trusted}")?;
                }
                let uncovered = events - checkpoint_size;
                if uncovered > 0 {
                    write!(
                        f,
                        "; {uncovered} newer events are in order but not yet signed"
                    )?;
                }
                Ok(())
            }
            // Neither names one bad leaf: the trail as a whole is not the one trusted.
            VerifyReport::Broken {
                kind: kind @ (BreakKind::RolledBack | BreakKind::Forked),
                detail,
                ..
            } => write!(f, "broken: {kind}: {detail}"),
            VerifyReport::Broken { seq, kind, detail } => {
                write!(f, "broken at seq {seq} ({kind}): {detail}")
            }
        }
    }
}

/// What [`verify_trail`] holds a trail to, besides its own checkpoints.
#[derive(Clone, Copy)]
pub struct Expectations<'a> {
    /// The server's verifier key: every checkpoint must be validly signed with it.
    pub key: &'a VerifyingKey,
    /// The tenant being verified: every checkpoint's origin must be `logbook/<tenant>` and
    /// every readable event's `"tenant"` member must be this tenant.
    pub tenant: &'a str,
    /// A checkpoint the verifier saw earlier and kept (its signature already checked):
    /// the trail must extend it, i.e. its first `trusted.size` leaves must have the
    /// trusted root ([`BreakKind::RolledBack`], [`BreakKind::Forked`] otherwise).
    pub trusted: Option<&'a Checkpoint>,
    /// Whether leaves beyond the newest checkpoint are an error
    /// ([`BreakKind::BeyondCheckpoint`]) rather than "not yet signed": exports end at their
    /// checkpoint.
    pub signed_only: bool,
    /// The leaf hashes recorded beside the leaves (a data directory's `hashes.bin`, an
    /// export's leaf-hash lines), by seq, if any. They are not trusted: they name the first
    /// altered leaf only when their own root is the root of the checkpoint the leaves fail,
    /// which proves them to be the signed leaf hashes. Called once per leaf, in order, right
    /// after that leaf is read, so a streaming source may answer with the hash it read
    /// with the leaf; `None` for a seq means no usable recorded hashes from there on. Not
    /// called for a pruned leaf: the hash it comes with is its recorded one.
    pub stored_hashes: Option<&'a dyn Fn(u64) -> Option<Hash>>,
}

/// The members of an event the walk reads; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct LeafHead<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    tenant: Option<Cow<'a, str>>,
}

impl<'a> LeafHead<'a> {
    /// The head of a leaf, or `None` if it is not a JSON object with these members as
    /// their types: such a leaf is checked by the checkpoints alone.
    fn read(leaf: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(leaf).ok()
    }
}

/// One checkpoint note as the verifier sees it: the size it claims, and either the
/// verified checkpoint or why it is not acceptable.
struct Claim {
    size: u64,
    checkpoint: Result<Checkpoint, (BreakKind, String)>,
}

/// Verifies a whole trail against its signed checkpoints.
///
/// - `leaves`: every leaf in stored order, as canonical bytes ([`canonical_json`] of the
///   event), or as [`Leaf`]s, whose first ones may be pruned (a recorded hash instead of
///   the bytes). An `Err` item stops verification with that error. Each leaf's `"seq"` and
///   `"tenant"` members are read; a leaf that is not a JSON object claims its position and
///   no tenant (the checkpoints then find it altered). A pruned leaf is taken at its
///   position with its recorded hash, which every checkpoint over it checks.
/// - `checkpoints`: signed checkpoint notes, in any order.
/// - `expect`: the key, the tenant and what else the trail must match.
/// - `progress`: called with the number of leaves read, every [`PROGRESS_INTERVAL`]
///   leaves and at the end.
///
/// Reports [`VerifyReport::Verified`] or the first [`VerifyReport::Broken`] found, walking
/// the leaves in order and taking each checkpoint when the walk reaches its size:
///
/// - a checkpoint note that is malformed or not validly signed by the key:
///   [`BreakKind::BadSignature`] at its claimed size; one whose origin names another
///   tenant: [`BreakKind::WrongTenant`] at its size;
/// - a checkpoint whose root is not the root of the leaves so far: [`BreakKind::Altered`]
///   at the first leaf whose hash differs from its recorded hash if the recorded hashes
///   have that checkpoint's root (so they are the signed ones), else at the previous
///   matching checkpoint's size, the first leaf of the range holding the altered one (the
///   detail says which); if another validly signed checkpoint of
///   the same size does match, the key signed two versions of the trail: `Altered` at that
///   size;
/// - a leaf claiming a smaller seq than its position: [`BreakKind::Inserted`];
/// - a leaf claiming a larger seq than its position: [`BreakKind::Inserted`] if that seq
///   appears again later, else [`BreakKind::Reordered`] if a skipped seq appears later,
///   else [`BreakKind::Missing`] (the rest of the leaves are read to decide);
/// - an event of another tenant (or of none): [`BreakKind::WrongTenant`] at its seq;
/// - a pruned leaf after one that was not: [`BreakKind::Missing`] at its seq (pruning
///   removes the oldest bodies only, so this body was deleted otherwise);
/// - leaves ending before a checkpoint's size: [`BreakKind::Truncated`] at the number of
///   leaves;
/// - with `signed_only`, leaves beyond the newest checkpoint:
///   [`BreakKind::BeyondCheckpoint`] at its size;
/// - with a trusted checkpoint: leaves ending before its size is [`BreakKind::RolledBack`];
///   a root at its size other than its root is [`BreakKind::Forked`] if the trail's own
///   checkpoints cover that size and match (the key signed both histories), else
///   [`BreakKind::Altered`], as for any checkpoint. Comparing the rebuilt root at the
///   trusted size with the trusted root, and the root at the newest size with the newest
///   checkpoint, is what a consistency proof computed from these leaves would establish.
///
/// Cost: one leaf hash per leaf plus amortised one node hash, one root per checkpoint
/// (O(log n) hashes) and one signature check per checkpoint; memory O(log n) besides the
/// checkpoints.
pub fn verify_trail<L: Into<Leaf>>(
    leaves: impl Iterator<Item = Result<L, AuditError>>,
    checkpoints: &[String],
    expect: &Expectations<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    if let Some(trusted) = expect.trusted
        && trusted.tenant != expect.tenant
    {
        return Ok(VerifyReport::Broken {
            seq: 0,
            kind: BreakKind::WrongTenant,
            detail: format!(
                "the trusted checkpoint is for tenant {:?}, but the trail is {:?}'s",
                trusted.tenant, expect.tenant
            ),
        });
    }
    let claims = read_claims(checkpoints, expect);
    let mut walk = Walk {
        claims: &claims,
        next: 0,
        range: CompactRange::new(),
        stored: expect.stored_hashes.map(|_| CompactRange::new()),
        last_good: 0,
        first_diff: None,
        forked: false,
        expect,
    };
    if let Some(broken) = walk.reach() {
        return Ok(broken);
    }
    let mut leaves = leaves.map(|item| item.map(Into::into));
    let mut pruned = 0;
    while let Some(item) = leaves.next() {
        let position = walk.range.size();
        let bytes = match item? {
            Leaf::Pruned(hash) if pruned == position => {
                pruned += 1;
                walk.push_pruned(hash);
                if walk.range.size().is_multiple_of(PROGRESS_INTERVAL) {
                    progress(walk.range.size());
                }
                if let Some(broken) = walk.reach() {
                    return Ok(broken);
                }
                continue;
            }
            Leaf::Pruned(_) => return Ok(pruned_after_body(position, pruned)),
            Leaf::Body(bytes) => bytes,
        };
        let head = LeafHead::read(&bytes);
        let claimed = head.as_ref().and_then(|head| head.seq).unwrap_or(position);
        if claimed != position {
            return sequence_break(position, claimed, leaves, progress);
        }
        if let Some(head) = &head
            && head.tenant.as_deref() != Some(expect.tenant)
        {
            return Ok(wrong_tenant_event(
                position,
                head.tenant.as_deref(),
                expect.tenant,
            ));
        }
        walk.push(position, &bytes);
        if walk.range.size().is_multiple_of(PROGRESS_INTERVAL) {
            progress(walk.range.size());
        }
        if let Some(broken) = walk.reach() {
            return Ok(broken);
        }
    }
    progress(walk.range.size());
    Ok(walk.finish(pruned))
}

/// The report for a pruned leaf after leaves that were not.
fn pruned_after_body(seq: u64, pruned: u64) -> VerifyReport {
    VerifyReport::Broken {
        seq,
        kind: BreakKind::Missing,
        detail: format!(
            "event {seq}'s body is gone, but only the first {pruned} events were pruned and \
             events before it kept theirs: pruning removes the oldest bodies only, so this \
             one was deleted"
        ),
    }
}

/// Verifies every note and sorts them by the size they claim (bad ones first at a size).
fn read_claims(checkpoints: &[String], expect: &Expectations<'_>) -> Vec<Claim> {
    let mut claims: Vec<Claim> = checkpoints
        .iter()
        .map(|note| match Checkpoint::verify(note, expect.key) {
            Ok(checkpoint) if checkpoint.tenant != expect.tenant => Claim {
                size: checkpoint.size,
                checkpoint: Err((
                    BreakKind::WrongTenant,
                    format!(
                        "it is signed for tenant {:?}, not {:?}",
                        checkpoint.tenant, expect.tenant
                    ),
                )),
            },
            Ok(checkpoint) => Claim {
                size: checkpoint.size,
                checkpoint: Ok(checkpoint),
            },
            Err(error) => Claim {
                size: claimed_size(note).unwrap_or(0),
                checkpoint: Err((BreakKind::BadSignature, error.to_string())),
            },
        })
        .collect();
    claims.sort_by_key(|claim| (claim.size, claim.checkpoint.is_ok()));
    claims
}

/// The tree being rebuilt and the checkpoints still to check against it.
struct Walk<'a> {
    claims: &'a [Claim],
    /// The first claim not yet checked.
    next: usize,
    range: CompactRange,
    /// The tree of the recorded leaf hashes, while every leaf so far had one.
    stored: Option<CompactRange>,
    /// The size of the last checkpoint that matched (0 before any).
    last_good: u64,
    /// The first leaf since `last_good` whose hash differs from its recorded hash.
    first_diff: Option<u64>,
    /// Whether the root at the trusted size differed while the trail's own checkpoints
    /// cover that size: a fork, unless a later checkpoint fails first.
    forked: bool,
    expect: &'a Expectations<'a>,
}

impl Walk<'_> {
    /// Adds a pruned leaf, known by its recorded hash, to both trees.
    fn push_pruned(&mut self, hash: Hash) {
        if let Some(tree) = &mut self.stored {
            tree.push(hash);
        }
        self.range.push(hash);
    }

    /// Adds leaf `seq` (its position) to the tree.
    fn push(&mut self, seq: u64, bytes: &[u8]) {
        let hash = leaf_hash(bytes);
        if let Some(tree) = &mut self.stored {
            match self.expect.stored_hashes.and_then(|stored| stored(seq)) {
                Some(stored) => {
                    if self.first_diff.is_none() && stored != hash {
                        self.first_diff = Some(seq);
                    }
                    tree.push(stored);
                }
                None => self.stored = None,
            }
        }
        self.range.push(hash);
    }

    /// Whether the recorded leaf hashes of every leaf so far have one of `roots`: then
    /// they are the signed leaf hashes, and a leaf whose hash differs was altered.
    fn stored_hashes_signed(&self, roots: &[Hash]) -> bool {
        self.stored
            .as_ref()
            .is_some_and(|tree| roots.contains(&tree.root()))
    }

    /// Checks everything due at the current size: its checkpoints, then the trusted one.
    fn reach(&mut self) -> Option<VerifyReport> {
        if let Some(broken) = self.take_checkpoints() {
            return Some(broken);
        }
        let trusted = self.expect.trusted?;
        let size = self.range.size();
        if trusted.size != size || self.range.root() == trusted.root {
            return None;
        }
        if self.last_good == size || self.next < self.claims.len() {
            // The trail's own checkpoints decide whether these leaves were altered; if
            // they all match, the key signed another history before.
            self.forked = true;
            return None;
        }
        Some(self.altered(size, "the trusted checkpoint", &[trusted.root]))
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
                checkpoint: Err((kind, why)),
                ..
            }) => return Some(bad_claim(size, *kind, why)),
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
        let roots: Vec<Hash> = here
            .iter()
            .filter_map(|claim| claim.checkpoint.as_ref().ok().map(|c| c.root))
            .collect();
        Some(self.altered(size, "the checkpoint", &roots))
    }

    /// The report for `checkpoint` (a name for people) at `size`, whose signed root is one
    /// of `roots`, when the leaves do not have it.
    fn altered(&self, size: u64, checkpoint: &str, roots: &[Hash]) -> VerifyReport {
        let last_good = self.last_good;
        let mismatch = format!("{checkpoint} at size {size} does not match the leaves");
        let range = format!(
            "the first altered leaf is one of seqs {last_good}..{size}, after the last \
             matching checkpoint"
        );
        let signed = self.stored_hashes_signed(roots);
        let (seq, detail) = match (self.first_diff, self.expect.stored_hashes) {
            (Some(seq), _) if signed => (
                seq,
                format!(
                    "{mismatch}; leaf {seq} is the first whose hash differs from its recorded \
                     leaf hash, and the recorded leaf hashes are the signed ones (they have \
                     the checkpoint's root)"
                ),
            ),
            (_, Some(_)) => (
                last_good,
                format!(
                    "{mismatch}; the recorded leaf hashes do not have the checkpoint's root \
                     either (they were changed too, or are incomplete), so {range}"
                ),
            ),
            (_, None) => (
                last_good,
                format!("{mismatch}; {range} (no recorded leaf hashes to narrow it down)"),
            ),
        };
        VerifyReport::Broken {
            seq,
            kind: BreakKind::Altered,
            detail,
        }
    }

    /// The report once every leaf was read, the first `pruned` of them pruned.
    fn finish(self, pruned: u64) -> VerifyReport {
        let events = self.range.size();
        let last_good = self.last_good;
        if let Some(claim) = self.claims.get(self.next) {
            // The leaves ended before this checkpoint's size.
            return match &claim.checkpoint {
                Err((kind, why)) => bad_claim(claim.size, *kind, why),
                Ok(_) => VerifyReport::Broken {
                    seq: events,
                    kind: BreakKind::Truncated,
                    detail: format!(
                        "the trail ends after {events} events, but a checkpoint signs {} events",
                        claim.size
                    ),
                },
            };
        }
        if self.expect.signed_only && events > last_good {
            return VerifyReport::Broken {
                seq: last_good,
                kind: BreakKind::BeyondCheckpoint,
                detail: format!(
                    "{} events follow the checkpoint of size {last_good}, but nothing may: they \
                     were added after it was signed",
                    events - last_good
                ),
            };
        }
        let Some(trusted) = self.expect.trusted else {
            return VerifyReport::Verified {
                events,
                pruned,
                checkpoint_size: last_good,
                trusted: None,
            };
        };
        if events < trusted.size {
            return VerifyReport::Broken {
                seq: events,
                kind: BreakKind::RolledBack,
                detail: format!(
                    "the trail holds {events} events (its newest checkpoint signs {last_good}), \
                     but the trusted checkpoint signs {}: signed events are gone",
                    trusted.size
                ),
            };
        }
        if self.forked {
            return VerifyReport::Broken {
                seq: trusted.size,
                kind: BreakKind::Forked,
                detail: format!(
                    "the trail matches its own checkpoints, but its first {} events are not the \
                     ones the trusted checkpoint signs: the key signed two different histories",
                    trusted.size
                ),
            };
        }
        VerifyReport::Verified {
            events,
            pruned,
            checkpoint_size: last_good.max(trusted.size),
            trusted: Some(trusted.size),
        }
    }
}

/// The report for a checkpoint note that is not acceptable.
fn bad_claim(size: u64, kind: BreakKind, why: &str) -> VerifyReport {
    VerifyReport::Broken {
        seq: size,
        kind,
        detail: format!("the checkpoint claiming size {size} is not acceptable: {why}"),
    }
}

/// The report for an event of another tenant (or of none).
fn wrong_tenant_event(seq: u64, found: Option<&str>, tenant: &str) -> VerifyReport {
    let detail = match found {
        Some(found) => format!("event {seq} belongs to tenant {found:?}, not {tenant:?}"),
        None => format!("event {seq} names no tenant, but the trail is {tenant:?}'s"),
    };
    VerifyReport::Broken {
        seq,
        kind: BreakKind::WrongTenant,
        detail,
    }
}

/// Classifies the first leaf whose claimed seq is not its position, reading the rest of
/// the leaves if needed.
fn sequence_break(
    position: u64,
    claimed: u64,
    rest: impl Iterator<Item = Result<Leaf, AuditError>>,
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
        let leaf = item?;
        at += 1;
        let seq = match &leaf {
            Leaf::Body(bytes) => LeafHead::read(bytes).and_then(|head| head.seq),
            Leaf::Pruned(_) => None,
        }
        .unwrap_or(at);
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
mod pruned_tests;
#[cfg(test)]
mod tests;
