//! Known-answer tests: the published RFC 6962/9162 test vectors of the transparency-dev/merkle
//! Go repository (testonly/constants.go: LeafInputs, NodeHashes, RootHashes, CompactTrees;
//! proof/verify_test.go: inclusionProofs, consistencyProofs), with the corruption probes of
//! that file's verifierCheck. Every hash below was also recomputed independently with
//! Python's hashlib before being written down, and matched.
#![allow(clippy::unwrap_used)]

use super::tests::hex;
use super::*;

/// testonly.LeafInputs().
const LEAF_INPUTS: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// testonly.RootHashes(): the root of the first `i` leaf inputs, for i = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// testonly.NodeHashes(): perfect subtree hashes by level, then by index.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// testonly.CompactTrees(): the frontier after each size, as (level, index) into NODES.
const FRONTIERS: [&[(usize, usize)]; 9] = [
    &[],
    &[(0, 0)],
    &[(1, 0)],
    &[(1, 0), (0, 2)],
    &[(2, 0)],
    &[(2, 0), (0, 4)],
    &[(2, 0), (1, 2)],
    &[(2, 0), (1, 2), (0, 6)],
    &[(3, 0)],
];

/// proof/verify_test.go inclusionProofs: (leaf index, tree size, path). The Go file numbers
/// leaves from 1; the indexes here are 0-based.
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// proof/verify_test.go consistencyProofs: (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn unhex(text: &str) -> Hash {
    assert_eq!(text.len(), 64);
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn unhex_all(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|t| unhex(t)).collect()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|input| leaf_hash(input)).collect()
}

/// `abacaba0…123456`, the arbitrary hash of verify_test.go.
fn some_hash() -> Hash {
    unhex("abacaba000000000000000000000000000000000000000000060061e00123456")
}

#[test]
fn empty_tree_root() {
    assert_eq!(
        hex(&empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(root(&Vec::<Hash>::new(), 0).unwrap(), empty_root());
}

#[test]
fn leaf_and_node_hashes() {
    let leaves = leaf_hashes();
    for (level, nodes) in NODES.iter().enumerate() {
        for (index, want) in nodes.iter().enumerate() {
            let got = leaves.perfect_subtree(level as u32, index as u64);
            assert_eq!(hex(&got), *want, "node at level {level}, index {index}");
        }
    }
    assert_eq!(hex(&leaves[0]), NODES[0][0]);
    assert_eq!(
        node_hash(&leaves[0], &leaves[1]),
        unhex(NODES[1][0]),
        "level-1 node from two leaves"
    );
}

#[test]
fn roots_of_the_first_n_leaves() {
    let leaves = leaf_hashes();
    let mut range = CompactRange::new();
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(
            hex(&root(&leaves, size as u64).unwrap()),
            *want,
            "size {size}"
        );
        assert_eq!(hex(&range.root()), *want, "compact range at size {size}");
        let frontier: Vec<Hash> = FRONTIERS[size]
            .iter()
            .map(|&(level, index)| unhex(NODES[level][index]))
            .collect();
        assert_eq!(
            range.frontier(),
            frontier.as_slice(),
            "frontier at size {size}"
        );
        if size < leaves.len() {
            range.push(leaves[size]);
        }
    }
}

#[test]
fn published_inclusion_proofs() {
    let leaves = leaf_hashes();
    for (index, size, path) in INCLUSION {
        let want = unhex_all(path);
        assert_eq!(inclusion_proof(&leaves, index, size).unwrap(), want);
        let root_n = unhex(ROOTS[size as usize]);
        let leaf = leaves[index as usize];
        verify_inclusion(&leaf, index, size, &want, &root_n).unwrap();

        // verify_test.go's corruptInclusionProof probes: all must be rejected.
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (index.wrapping_sub(1), size, root_n, leaf, want.clone()),
            (index + 1, size, root_n, leaf, want.clone()),
            (index ^ 2, size, root_n, leaf, want.clone()),
            (index, size * 2, root_n, leaf, want.clone()),
            (index, size / 2, root_n, leaf, want.clone()),
            (index, size, root_n, leaf_hash(b"WrongLeaf"), want.clone()),
            (index, size, empty_root(), leaf, want.clone()),
            (index, size, some_hash(), leaf, want.clone()),
            (
                index,
                size,
                root_n,
                leaf,
                [want.clone(), vec![root_n]].concat(),
            ),
            (
                index,
                size,
                root_n,
                leaf,
                [vec![root_n], want.clone()].concat(),
            ),
        ];
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i][0] ^= 8;
            probes.push((index, size, root_n, leaf, bad));
        }
        if let Some((_, shorter)) = want.split_last() {
            probes.push((index, size, root_n, leaf, shorter.to_vec()));
        }
        if want.len() > 1 {
            let inserted = [&want[..1], &[some_hash()], &want[1..]].concat();
            probes.push((index, size, root_n, leaf, inserted));
        }
        for (i, (index, size, root, leaf, proof)) in probes.into_iter().enumerate() {
            assert!(
                verify_inclusion(&leaf, index, size, &proof, &root).is_err(),
                "probe {i} accepted"
            );
        }
    }
}

#[test]
fn published_consistency_proofs() {
    let leaves = leaf_hashes();
    for (old_size, new_size, proof) in CONSISTENCY {
        let want = unhex_all(proof);
        assert_eq!(
            consistency_proof(&leaves, old_size, new_size).unwrap(),
            want
        );
        let old_root = unhex(ROOTS[old_size as usize]);
        let new_root = unhex(ROOTS[new_size as usize]);
        verify_consistency(old_size, new_size, &old_root, &new_root, &want).unwrap();
        if want.is_empty() {
            continue;
        }

        // verify_test.go's corruptConsistencyProof probes: all must be rejected.
        let wrong_root = some_hash();
        let with = |before: &[Hash], after: &[Hash]| [before, &want, after].concat();
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (old_size - 1, new_size, old_root, new_root, want.clone()),
            (old_size + 1, new_size, old_root, new_root, want.clone()),
            (old_size ^ 2, new_size, old_root, new_root, want.clone()),
            (old_size, new_size * 2, old_root, new_root, want.clone()),
            (old_size, new_size / 2, old_root, new_root, want.clone()),
            (old_size, new_size, wrong_root, new_root, want.clone()),
            (old_size, new_size, old_root, wrong_root, want.clone()),
            (old_size, new_size, new_root, old_root, want.clone()),
            (old_size, new_size, old_root, new_root, Vec::new()),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                with(&[], &[old_root]),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                with(&[], &[new_root]),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                with(&[old_root], &[]),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                with(&[new_root], &[]),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                with(&[want[0]], &[]),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                want[..want.len() - 1].to_vec(),
            ),
        ];
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i][0] ^= 16;
            probes.push((old_size, new_size, old_root, new_root, bad));
        }
        for (i, (old_size, new_size, old_root, new_root, proof)) in probes.into_iter().enumerate() {
            assert!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &proof).is_err(),
                "probe {i} accepted for {old_size}->{new_size}"
            );
        }
    }
}
