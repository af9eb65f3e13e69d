//! The RFC 6962 Merkle tree (RFC 9162 §2.1) that auditors check the log against: leaf and node
//! hashes with the 0x00/0x01 domain separation, tree heads, inclusion and consistency proofs and
//! their verification, and a [`Frontier`] that keeps the head of an append-only tree in O(log n)
//! per leaf. Pure functions over hashes: what a leaf is (an event's bytes) is the store's choice,
//! and nothing here reads or trusts a database.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: a leaf can never pass for an interior node.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The head of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two below `n` (n ≥ 2): where RFC 6962 splits a tree of `n` leaves.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The tree head (MTH) of these leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path (PATH) of leaf `index` in the tree of `leaves`, from the leaf's sibling up;
/// `None` when there is no such leaf.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut leaves, mut index) = (leaves, index);
    // Collected top-down, answered bottom-up.
    while leaves.len() > 1 {
        let k = split(leaves.len());
        if index < k {
            path.push(root(&leaves[k..]));
            leaves = &leaves[..k];
        } else {
            path.push(root(&leaves[..k]));
            leaves = &leaves[k..];
            index -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// The consistency proof (PROOF) that the tree of the first `old_size` leaves is a prefix of the
/// tree of `leaves`; `None` when `old_size` is larger. Empty for sizes 0 and `leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    match old_size {
        m if m > leaves.len() => None,
        0 => Some(Vec::new()),
        m if m == leaves.len() => Some(Vec::new()),
        m => {
            let mut proof = Vec::new();
            subproof(m, leaves, true, &mut proof);
            Some(proof)
        }
    }
}

/// SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2, appended to `proof` bottom-up.
fn subproof(m: usize, leaves: &[Hash], whole: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a tree of {old} leaves cannot be a prefix of one of {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("the proof leads to another root")]
    RootMismatch,
}

/// Checks that the leaf hashing to `leaf` is leaf `index` of the tree of `size` leaves whose head
/// is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with head `old_root` is a prefix of the tree of
/// `new_size` leaves with head `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty one; there is nothing to prove.
        return if proof.is_empty() && old_root == &empty_root() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    // A power-of-two old tree is a whole subtree of the new one: its head starts the path.
    let path: Vec<Hash> = if old_size.is_power_of_two() {
        std::iter::once(*old_root)
            .chain(proof.iter().copied())
            .collect()
    } else {
        proof.to_vec()
    };
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of an append-only tree: the heads of its perfect subtrees, largest first (one
/// per set bit of the size). Appending a leaf merges equal-sized subtrees, O(log n); the tree
/// head folds them from the right, so no leaf is ever read again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// A frontier stored earlier (size and peaks, largest first); `None` when they disagree.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Self { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends the leaf with hash `leaf` and adds to `completed` every node it completes: the
    /// leaf itself, then each subtree it closes, bottom-up (what a store keeps).
    pub fn append(&mut self, leaf: Hash, completed: &mut Vec<(NodeId, Hash)>) {
        let mut carry = leaf;
        let mut size = self.size;
        let mut level = 0u8;
        completed.push((
            NodeId {
                level,
                index: self.size,
            },
            leaf,
        ));
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                carry = node_hash(&left, &carry);
            }
            size >>= 1;
            level += 1;
            completed.push((
                NodeId {
                    level,
                    index: self.size >> level,
                },
                carry,
            ));
        }
        self.peaks.push(carry);
        self.size += 1;
    }

    /// Appends the leaf with hash `leaf`.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                carry = node_hash(&left, &carry);
            }
            size >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
    }

    /// The head of the tree so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// A perfect subtree of the tree: the head of leaves `[index·2^level, (index+1)·2^level)`. A
/// store keeps one hash per such node, so any tree head or proof is a fold of O(log n) of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

/// The perfect subtrees, largest first, whose heads fold into the head of leaves `[lo, hi)`
/// (a range of RFC 6962's shape: `lo` is a multiple of the largest power of two below the width).
fn subtrees(lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    let (mut lo, hi) = (lo, hi);
    while lo < hi {
        let width = hi - lo;
        let part = if width.is_power_of_two() {
            width
        } else {
            split(width as usize) as u64
        };
        let level = part.trailing_zeros() as u8;
        out.push(NodeId {
            level,
            index: lo >> level,
        });
        lo += part;
    }
}

/// The head of a range from the heads of its perfect subtrees (largest first), as
/// [`Frontier::root`] folds its peaks.
pub fn fold(parts: &[Hash]) -> Hash {
    let mut parts = parts.iter().rev();
    let Some(last) = parts.next() else {
        return empty_root();
    };
    parts.fold(*last, |right, left| node_hash(left, &right))
}

/// One hash of a proof (or a tree head) as the stored nodes it folds from.
pub type Plan = Vec<Vec<NodeId>>;

/// The nodes whose fold is the head of the tree of `size` leaves (its peaks).
pub fn head_plan(size: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    subtrees(0, size, &mut out);
    out
}

fn range(lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    subtrees(lo, hi, &mut out);
    out
}

/// [`inclusion_proof`] of leaf `index` in the tree of `size` leaves, as stored nodes: each hash
/// of the path is the fold of its entry. `None` when there is no such leaf.
pub fn inclusion_plan(index: u64, size: u64) -> Option<Plan> {
    if index >= size {
        return None;
    }
    let (mut lo, mut hi, mut m) = (0, size, index);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let k = split((hi - lo) as usize) as u64;
        if m < k {
            path.push(range(lo + k, hi));
            hi = lo + k;
        } else {
            path.push(range(lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// [`consistency_proof`] from the tree of `old` leaves to the one of `new`, as stored nodes.
/// `None` when `old > new`.
pub fn consistency_plan(old: u64, new: u64) -> Option<Plan> {
    if old > new {
        return None;
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        subplan(old, 0, new, true, &mut out);
    }
    Some(out)
}

/// SUBPROOF(m, D[lo..hi], b) over ranges instead of leaves.
fn subplan(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Plan) {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range(lo, hi));
        }
        return;
    }
    let k = split(n as usize) as u64;
    if m <= k {
        subplan(m, lo, lo + k, whole, out);
        out.push(range(lo + k, hi));
    } else {
        subplan(m - k, lo + k, hi, false, out);
        out.push(range(lo, lo + k));
    }
}

/// The hashes of a plan from the stored nodes `node` finds; `None` when one is missing.
pub fn assemble(plan: &Plan, node: impl Fn(NodeId) -> Option<Hash>) -> Option<Vec<Hash>> {
    plan.iter()
        .map(|parts| {
            let hashes = parts
                .iter()
                .map(|id| node(*id))
                .collect::<Option<Vec<_>>>()?;
            Some(fold(&hashes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(hex_str: &str) -> Hash {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    /// RFC 6962's reference leaves, as published with Certificate Transparency's test vectors.
    fn reference_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|d| leaf_hash(&hex::decode(d).unwrap()))
        .collect()
    }

    /// The reference tree heads for sizes 0 to 8.
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

    #[test]
    fn tree_heads_match_the_reference_for_every_size_both_ways() {
        let leaves = reference_leaves();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), h(ROOTS[0]));
        for n in 1..=leaves.len() {
            assert_eq!(root(&leaves[..n]), h(ROOTS[n]), "size {n}");
            frontier.push(leaves[n - 1]);
            assert_eq!(frontier.root(), h(ROOTS[n]), "frontier at size {n}");
            assert_eq!(frontier.peaks().len(), n.count_ones() as usize);
        }
        let restored = Frontier::from_parts(frontier.size(), frontier.peaks().to_vec()).unwrap();
        assert_eq!(restored.root(), h(ROOTS[8]));
        assert!(Frontier::from_parts(3, vec![h(ROOTS[1])]).is_none());
    }

    #[test]
    fn inclusion_proofs_match_the_reference() {
        let leaves = reference_leaves();
        let cases = [
            (
                0,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, expected) in cases {
            let expected: Vec<Hash> = expected.into_iter().map(h).collect();
            assert_eq!(inclusion_proof(&leaves, index).unwrap(), expected);
            verify_inclusion(&leaves[index], index as u64, 8, &expected, &h(ROOTS[8])).unwrap();
        }
        assert_eq!(inclusion_proof(&leaves, 8), None);
    }

    #[test]
    fn consistency_proofs_match_the_reference() {
        let leaves = reference_leaves();
        let cases = [
            (
                2,
                8,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, expected) in cases {
            let expected: Vec<Hash> = expected.into_iter().map(h).collect();
            assert_eq!(
                consistency_proof(&leaves[..new], old).unwrap(),
                expected,
                "{old} → {new}"
            );
            verify_consistency(
                old as u64,
                new as u64,
                &h(ROOTS[old]),
                &h(ROOTS[new]),
                &expected,
            )
            .unwrap();
        }
    }

    fn many(n: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i, i.wrapping_mul(7)])).collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_forgery_does() {
        let all = many(33);
        for n in 1..=all.len() {
            let leaves = &all[..n];
            let head = root(leaves);
            let size = n as u64;
            for i in 0..n {
                let proof = inclusion_proof(leaves, i).unwrap();
                let index = i as u64;
                verify_inclusion(&leaves[i], index, size, &proof, &head).unwrap();
                // Wrong leaf, index and size; a path truncated, extended, with a sibling
                // changed; another root: every one refused.
                if n > 1 {
                    let other = leaves[(i + 1) % n];
                    assert!(verify_inclusion(&other, index, size, &proof, &head).is_err());
                    let wrong = (i + 1) as u64 % size;
                    assert!(verify_inclusion(&leaves[i], wrong, size, &proof, &head).is_err());
                }
                // A proof made for this size, held against the head of another size.
                let bigger = root(&all[..(n + 1).min(all.len())]);
                if bigger != head {
                    assert!(
                        verify_inclusion(&leaves[i], index, size + 1, &proof, &bigger).is_err()
                    );
                }
                assert!(verify_inclusion(&leaves[i], size, size, &proof, &head).is_err());
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(verify_inclusion(&leaves[i], index, size, shorter, &head).is_err());
                    let mut changed = proof.clone();
                    changed[0][0] ^= 1;
                    assert!(verify_inclusion(&leaves[i], index, size, &changed, &head).is_err());
                }
                if n > 1 {
                    // The same leaves with two of them swapped: another tree.
                    let mut swapped = leaves.to_vec();
                    swapped.swap(i, (i + 1) % n);
                    let swapped_head = root(&swapped);
                    assert!(
                        verify_inclusion(&leaves[i], index, size, &proof, &swapped_head).is_err()
                    );
                }
                let mut longer = proof.clone();
                longer.push(head);
                assert!(verify_inclusion(&leaves[i], index, size, &longer, &head).is_err());
                let elsewhere = root(&all[..n.saturating_sub(1).max(1)]);
                if elsewhere != head {
                    assert!(verify_inclusion(&leaves[i], index, size, &proof, &elsewhere).is_err());
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_no_forgery_does() {
        let all = many(33);
        for new in 1..=all.len() {
            let new_root = root(&all[..new]);
            for old in 0..=new {
                let old_root = root(&all[..old]);
                let proof = consistency_proof(&all[..new], old).unwrap();
                let (o, n) = (old as u64, new as u64);
                verify_consistency(o, n, &old_root, &new_root, &proof).unwrap();
                if old == 0 || old == new {
                    continue;
                }
                // Sizes swapped or shifted, a root of another tree, a proof cut short, a hash
                // changed: every one refused.
                assert!(verify_consistency(n, o, &new_root, &old_root, &proof).is_err());
                // A proof made for these sizes, held against the heads of other sizes.
                let next_old = root(&all[..old + 1]);
                assert!(verify_consistency(o + 1, n, &next_old, &new_root, &proof).is_err());
                if new < all.len() {
                    let next_new = root(&all[..new + 1]);
                    assert!(verify_consistency(o, n + 1, &old_root, &next_new, &proof).is_err());
                }
                let forged_old = root(&many(old as u8 + 1)[1..]);
                assert!(verify_consistency(o, n, &forged_old, &new_root, &proof).is_err());
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(verify_consistency(o, n, &old_root, &new_root, shorter).is_err());
                }
                for k in 0..proof.len() {
                    let mut changed = proof.clone();
                    changed[k][31] ^= 0x80;
                    assert!(verify_consistency(o, n, &old_root, &new_root, &changed).is_err());
                }
            }
        }
    }
    /// Every complete subtree of `leaves`, as a store would hold them.
    fn stored(leaves: &[Hash]) -> std::collections::HashMap<NodeId, Hash> {
        let mut frontier = Frontier::default();
        let mut nodes = Vec::new();
        for leaf in leaves {
            frontier.append(*leaf, &mut nodes);
        }
        nodes.into_iter().collect()
    }

    #[test]
    fn plans_over_stored_nodes_give_the_same_heads_and_proofs() {
        let all = many(40);
        let nodes = stored(&all);
        // About two nodes per leaf, each the head of its range.
        assert_eq!(nodes.len(), 2 * all.len() - all.len().count_ones() as usize);
        for (id, hash) in &nodes {
            let lo = (id.index << id.level) as usize;
            assert_eq!(root(&all[lo..lo + (1 << id.level)]), *hash, "{id:?}");
        }
        let get = |id| nodes.get(&id).copied();
        for n in 0..=all.len() {
            let size = n as u64;
            let head = assemble(&vec![head_plan(size)], get).unwrap()[0];
            assert_eq!(head, root(&all[..n]), "head of {n}");
            for i in 0..n {
                let plan = inclusion_plan(i as u64, size).unwrap();
                assert!(plan.iter().flatten().count() <= 2 * 64);
                assert_eq!(assemble(&plan, get), inclusion_proof(&all[..n], i));
            }
            assert_eq!(inclusion_plan(size, size), None);
            for old in 0..=n {
                let plan = consistency_plan(old as u64, size).unwrap();
                assert_eq!(assemble(&plan, get), consistency_proof(&all[..n], old));
            }
            assert_eq!(consistency_plan(size + 1, size), None);
        }
    }

    mod forged {
        //! Random trees and random forgeries of their proofs: the verifier takes every honest
        //! proof and refuses every forged one.
        use super::super::*;
        use proptest::prelude::*;

        /// `n` distinct leaves (the salt keeps them distinct from one case to the next).
        fn leaves(n: usize, salt: u64) -> Vec<Hash> {
            (0..n as u64)
                .map(|i| leaf_hash(&[i.to_be_bytes(), salt.to_be_bytes()].concat()))
                .collect()
        }

        fn tree() -> impl Strategy<Value = (Vec<Hash>, usize, u64)> {
            (1usize..200, any::<u64>())
                .prop_flat_map(|(n, salt)| (Just(leaves(n, salt)), 0..n, any::<u64>()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn forged_inclusion_proofs_are_rejected((all, i, pick) in tree()) {
                let n = all.len();
                let size = n as u64;
                let head = root(&all);
                let proof = inclusion_proof(&all, i).unwrap();
                let index = i as u64;
                prop_assert!(verify_inclusion(&all[i], index, size, &proof, &head).is_ok());
                if !proof.is_empty() {
                    // A wrong sibling: one bit of one hash.
                    let mut wrong = proof.clone();
                    let k = (pick as usize) % wrong.len();
                    wrong[k][(pick as usize >> 8) % 32] ^= 1 << (pick % 8);
                    prop_assert!(verify_inclusion(&all[i], index, size, &wrong, &head).is_err());
                    // Truncated.
                    prop_assert!(verify_inclusion(&all[i], index, size, &proof[..proof.len() - 1], &head).is_err());
                }
                // Extended.
                let mut longer = proof.clone();
                longer.push(leaf_hash(&pick.to_be_bytes()));
                prop_assert!(verify_inclusion(&all[i], index, size, &longer, &head).is_err());
                // Wrong size: the proof held against the head of a tree of another size.
                let other = 1 + (pick as usize) % (2 * n);
                if other != n {
                    let more = leaves(other.max(n), 0);
                    let mut resized = all.clone();
                    resized.extend_from_slice(&more[n.min(other)..]);
                    resized.truncate(other);
                    let resized_head = root(&resized);
                    prop_assert!(verify_inclusion(&all[i], index, other as u64, &proof, &resized_head).is_err());
                }
                prop_assert!(verify_inclusion(&all[i], size + (pick % 5), size, &proof, &head).is_err());
                if n > 1 {
                    // Wrong index.
                    let j = (i + 1 + (pick as usize) % (n - 1)) % n;
                    prop_assert!(verify_inclusion(&all[i], j as u64, size, &proof, &head).is_err());
                    // Swapped leaves: another leaf's hash at this index, or the swapped tree.
                    prop_assert!(verify_inclusion(&all[j], index, size, &proof, &head).is_err());
                    let mut swapped = all.clone();
                    swapped.swap(i, j);
                    prop_assert!(verify_inclusion(&all[i], index, size, &proof, &root(&swapped)).is_err());
                }
            }

            #[test]
            fn forged_consistency_proofs_are_rejected((all, old, pick) in tree()) {
                let new = all.len();
                let (o, n) = (old as u64, new as u64);
                let (old_root, new_root) = (root(&all[..old]), root(&all));
                let proof = consistency_proof(&all, old).unwrap();
                prop_assert!(verify_consistency(o, n, &old_root, &new_root, &proof).is_ok());
                prop_assume!(old > 0 && old < new);
                let k = (pick as usize) % proof.len();
                let mut wrong = proof.clone();
                wrong[k][(pick as usize >> 8) % 32] ^= 1 << (pick % 8);
                prop_assert!(verify_consistency(o, n, &old_root, &new_root, &wrong).is_err());
                prop_assert!(verify_consistency(o, n, &old_root, &new_root, &proof[..proof.len() - 1]).is_err());
                let mut longer = proof.clone();
                longer.push(leaf_hash(&pick.to_be_bytes()));
                prop_assert!(verify_consistency(o, n, &old_root, &new_root, &longer).is_err());
                // Wrong sizes, each with the head of a tree of that size.
                let shifted = 1 + (pick as usize) % (new - 1);
                if shifted != old {
                    let shifted_root = root(&all[..shifted]);
                    prop_assert!(verify_consistency(shifted as u64, n, &shifted_root, &new_root, &proof).is_err());
                }
                // A new tree that rewrote history: two leaves of the old part swapped.
                if old > 1 {
                    let mut rewritten = all.clone();
                    rewritten.swap(0, old - 1);
                    prop_assert!(verify_consistency(o, n, &old_root, &root(&rewritten), &proof).is_err());
                }
            }
        }
    }
}
