//! The ledger's Merkle tree (SHA-256, domain-separated).
//!
//! - leaf  = SHA-256(0x00 ‖ u32be(len e) ‖ e ‖ u32be(len c) ‖ c ‖ u64be(amount)), e = epoch id,
//!   c = contributor id (UTF-8 bytes); the epoch in the leaf stops a proof being replayed elsewhere.
//! - node  = SHA-256(0x01 ‖ left ‖ right)
//! - empty = SHA-256(0x02)
//!
//! Leaves are sorted by contributor id (bytewise) and paired left to right, level by level; an
//! unpaired last node moves up unchanged (never duplicated, so no two leaf lists share a root).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(epoch_id: &str, contributor_id: &str, amount: u64) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    for part in [epoch_id.as_bytes(), contributor_id.as_bytes()] {
        h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(part);
    }
    h.update(amount.to_be_bytes());
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn empty_root() -> Hash {
    Sha256::digest([0x02]).into()
}

/// Which side of the running hash a proof sibling sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    pub side: Side,
    /// Sibling hash, lowercase hex.
    pub hash: String,
}

/// All levels of the tree over `leaves` (level 0 = the leaves).
fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
        let next = prev
            .chunks(2)
            .map(|p| match p {
                [l, r] => node_hash(l, r),
                [single] => *single,
                _ => empty_root(),
            })
            .collect();
        levels.push(next);
    }
    levels
}

/// Root of leaves already sorted by contributor.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    levels(leaves.to_vec()).last().and_then(|l| l.first().copied()).unwrap_or_else(empty_root)
}

/// Proof for leaf `index`.
pub fn proof(leaves: &[Hash], index: usize) -> Vec<ProofStep> {
    let mut steps = Vec::new();
    let mut i = index;
    for level in levels(leaves.to_vec()) {
        if level.len() <= 1 {
            break;
        }
        let sibling = i ^ 1;
        if let Some(h) = level.get(sibling) {
            let side = if sibling < i { Side::Left } else { Side::Right };
            steps.push(ProofStep { side, hash: hex::encode(h) });
        }
        i /= 2;
    }
    steps
}

/// Checks that `(epoch, contributor, amount)` is in the ledger whose root is `root_hex`.
pub fn verify(
    epoch_id: &str,
    contributor_id: &str,
    amount: u64,
    proof: &[ProofStep],
    root_hex: &str,
) -> bool {
    let mut h = leaf_hash(epoch_id, contributor_id, amount);
    for step in proof {
        let Ok(bytes) = hex::decode(&step.hash) else { return false };
        let Ok(sibling) = Hash::try_from(bytes.as_slice()) else { return false };
        h = match step.side {
            Side::Left => node_hash(&sibling, &h),
            Side::Right => node_hash(&h, &sibling),
        };
    }
    hex::encode(h) == root_hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        for n in [1usize, 2, 3, 5, 8, 13] {
            let ids: Vec<String> = (0..n).map(|i| format!("c{i:02}")).collect();
            let leaves: Vec<Hash> =
                ids.iter().enumerate().map(|(i, c)| leaf_hash("2026-W48", c, i as u64 * 7)).collect();
            let r = hex::encode(root(&leaves));
            for (i, c) in ids.iter().enumerate() {
                let p = proof(&leaves, i);
                assert!(verify("2026-W48", c, i as u64 * 7, &p, &r), "n={n} i={i}");
                assert!(!verify("2026-W48", c, i as u64 * 7 + 1, &p, &r), "amount changed");
                assert!(!verify("2026-W49", c, i as u64 * 7, &p, &r), "other epoch");
            }
        }
        assert_eq!(root(&[]), empty_root());
    }

    #[test]
    fn encoding_is_pinned() {
        // Independent of this code: sha256(0x00 ‖ 00000001 'e' ‖ 00000001 'c' ‖ u64be 5).
        let mut pre = vec![0u8, 0, 0, 0, 1, b'e', 0, 0, 0, 1, b'c'];
        pre.extend(5u64.to_be_bytes());
        assert_eq!(leaf_hash("e", "c", 5), <Hash>::from(Sha256::digest(&pre)));
        let (a, b) = (leaf_hash("e", "a", 1), leaf_hash("e", "b", 2));
        let three = root(&[a, b, a]);
        assert_eq!(three, node_hash(&node_hash(&a, &b), &a), "odd node moves up unchanged");
    }
}
