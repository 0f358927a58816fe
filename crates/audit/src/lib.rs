//! The pure, I/O-free core of Logbook's tamper-evident audit trail: RFC 9162 Merkle trees.
//!
//! Each tenant's audit events are appended as the leaves of a Merkle tree built exactly as
//! [RFC 9162] (Certificate Transparency v2) §2.1 specifies, so that anyone holding a tree
//! head can check, with the RFC's own algorithms, that an event is in the log (an
//! *inclusion proof*) and that a later tree extends an earlier one without rewriting it (a
//! *consistency proof*).
//!
//! This crate only hashes and proves. It reads leaf hashes through the [`LeafHashes`] trait
//! and never touches storage; checkpoints, signing and persistence live elsewhere.
//!
//! # What is in here
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
//! # Costs
//!
//! Every tree hash is assembled from hashes of *perfect* subtrees (2^k leaves, aligned),
//! obtained through [`LeafHashes::perfect_subtree`]. Its default computes the subtree from
//! its leaves, iteratively, in 2^k − 1 node hashes; so over plain leaf hashes [`root`] and
//! the proofs cost O(n) hashes. A store that keeps interior hashes (or a [`SubtreeCache`])
//! answers large subtrees directly, and then every function costs O(log n) subtree lookups
//! plus fewer than 2^(k+1) leaf reads and hashes below the cached level k. Verification
//! never reads the tree: it costs O(log n) hashes.
//!
//! [RFC 9162]: https://www.rfc-editor.org/rfc/rfc9162#section-2.1

pub mod merkle;

pub use merkle::*;
