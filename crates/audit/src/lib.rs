//! Logbook's tamper-evident, per-tenant audit trail.
//!
//! Each tenant's audit events are appended as the leaves of a Merkle tree built exactly as
//! [RFC 9162] (Certificate Transparency v2) §2.1 specifies. The server signs the tree's
//! size and root from time to time (a *checkpoint*); anyone holding the server's verifier
//! key can then check, with the RFC's own algorithms, that an event is in the trail (an
//! *inclusion proof*), that a later tree extends an earlier one without rewriting it (a
//! *consistency proof*), or the whole trail at once.
//!
//! # Canonical form
//!
//! An event's leaf is the canonical JSON of the event exactly as the API returns it
//! ([`canonical_json`]): serde_json's compact output with every object's keys sorted by
//! their UTF-8 bytes. Its leaf hash is [`leaf_hash`]`(canonical_json(event))`. The
//! [`canonical`] module documentation specifies the form byte for byte, for verifiers
//! written in other languages.
//!
//! # Checkpoints
//!
//! A [`Checkpoint`] is a C2SP `tlog-checkpoint` in a C2SP signed note, signed with Ed25519
//! ([`SigningKey`]):
//!
//! ```text
//! logbook/<tenant>
//! <tree size>
//! <base64 root hash>
//! time <unix seconds>
//!
//! — <key name> <base64(4-byte key hash || 64-byte signature)>
//! ```
//!
//! The verifier key ([`VerifyingKey::to_text`]) is `<name>+<8 hex key hash>+<base64(0x01
//! || public key)>`, as in `golang.org/x/mod/sumdb/note`, so Go's note tooling reads both.
//! See the [`checkpoint`] and [`signing`] modules for the exact rules.
//!
//! # Trail files
//!
//! A [`TrailStore`] keeps one tenant's trail in a directory: `leaves.log` holds the leaves
//! as frames `[u32 LE length][u32 LE CRC-32C][bytes]`, `hashes.bin` their 32-byte leaf
//! hashes at offset `32 * seq`. Appends fsync both files before returning; opening cuts a
//! torn tail left by a crash ([`Recovery`]). Proofs come from `hashes.bin` and an
//! in-memory cache of large subtrees, in well under a millisecond at a million leaves.
//! [`TrailStore::prune`] removes the bodies of the oldest leaves and keeps their hashes
//! (`pruned.log` records how many), so roots, proofs and checkpoints stay valid;
//! [`TrailStore::compact`] then rewrites `leaves.log` without them.
//!
//! # Verification
//!
//! [`verify_trail`] rebuilds the tree from the events (and from the recorded leaf hashes of
//! pruned ones) and checks every checkpoint's signature and root, and that the events'
//! sequence numbers run 0, 1, 2, … in stored order; it names the first broken seq and what happened there ([`BreakKind`]: altered,
//! missing, reordered, inserted, truncated, bad signature). [`verify_event_inclusion`]
//! checks a single event against a checkpoint with an inclusion proof.
//!
//! # Merkle tree functions
//!
//! | Item | Use |
//! |---|---|
//! | [`leaf_hash`], [`node_hash`], [`empty_root`] | the RFC 9162 §2.1.1 hashes (SHA-256 with 0x00/0x01 prefixes) |
//! | [`root`] | `MTH(D[0:size])` from stored leaf hashes |
//! | [`inclusion_proof`], [`verify_inclusion`] | `PATH(m, D[n])` (§2.1.3.1) and its check (§2.1.3.2) |
//! | [`consistency_proof`], [`verify_consistency`] | `PROOF(m, D[n])` (§2.1.4.1) and its check (§2.1.4.2) |
//! | [`CompactRange`] | the writer's append-only frontier: root at any size in O(log n) memory |
//! | [`SubtreeCache`] | in-memory hashes of large perfect subtrees, so proofs over millions of leaves take microseconds |
//!
//! The tree functions read leaf hashes through the [`LeafHashes`] trait and never touch
//! storage. Every tree hash is assembled from hashes of *perfect* subtrees (2^k leaves,
//! aligned), obtained through [`LeafHashes::perfect_subtree`]. Its default computes the
//! subtree from its leaves, iteratively, in 2^k − 1 node hashes; so over plain leaf hashes
//! [`root`] and the proofs cost O(n) hashes. A store that keeps interior hashes (or a
//! [`SubtreeCache`]) answers large subtrees directly, and then every function costs
//! O(log n) subtree lookups plus fewer than 2^(k+1) leaf reads and hashes below the cached
//! level k. Verification never reads the tree: it costs O(log n) hashes.
//!
//! [RFC 9162]: https://www.rfc-editor.org/rfc/rfc9162#section-2.1

pub mod canonical;
pub mod checkpoint;
mod error;
pub mod merkle;
pub mod signing;
pub mod trail;
pub mod verify;

pub use canonical::canonical_json;
pub use checkpoint::{Checkpoint, CheckpointError};
pub use error::AuditError;
pub use merkle::*;
pub use signing::{KeyError, SigningKey, VerifyingKey};
pub use trail::{FrameSpan, LeafReader, Recovery, TrailStore, read_leaves, read_leaves_in};
pub use verify::{
    BreakKind, Expectations, Leaf, VerifyReport, verify_event_inclusion, verify_trail,
};
