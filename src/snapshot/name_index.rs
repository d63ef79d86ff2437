//! A name -> position index, built once and probed often: node names (once per candidate node
//! of every extender request: 10,000 probes for a filter and a prioritize at 5,000 nodes) and
//! the bound pods' UIDs (once per bind and per filter's hold).
//!
//! Laid out for that: every name in one contiguous buffer, each name's full hash beside its
//! offset, and an open-addressing table of 32-bit slots. A probe reads the slot table and then
//! the candidate's hash and bytes, all in a few hundred KiB even at 20,000 nodes, where a map
//! of `Arc<str>` keys follows a pointer to a separate allocation per compare.

use crate::model::Cluster;
use rustc_hash::FxHasher;
use std::hash::Hasher;

/// Name -> position (of a node in the cluster, or of a pod in the snapshot's pods). Built once
/// per snapshot, never changed.
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    /// All names, back to back, in order.
    bytes: Vec<u8>,
    /// Name `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<u32>,
    hashes: Vec<u64>,
    /// Position + 1 per slot; 0 is empty. Length a power of two, at least twice the names.
    slots: Vec<u32>,
}

fn hash(name: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(name.as_bytes());
    // Fx leaves low bits weak for short keys; fold the high half in before masking.
    let x = h.finish();
    x ^ (x >> 29) ^ (x >> 47)
}

impl NameIndex {
    /// The index of `names` (in their order). A repeated name keeps its first position.
    pub fn new<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Self {
        let count = names.len();
        let size = (count * 2).next_power_of_two().max(8);
        let mut index = NameIndex {
            bytes: Vec::new(),
            ends: Vec::with_capacity(count),
            hashes: Vec::with_capacity(count),
            slots: vec![0; size],
        };
        for name in names {
            index.bytes.extend_from_slice(name.as_bytes());
            index
                .ends
                .push(u32::try_from(index.bytes.len()).unwrap_or(u32::MAX));
            let h = hash(name);
            index.hashes.push(h);
            if index.find(name, h).is_none() {
                let mut at = (h as usize) & (size - 1);
                while index.slots[at] != 0 {
                    at = (at + 1) & (size - 1);
                }
                index.slots[at] = index.ends.len() as u32;
            }
        }
        index
    }

    /// The position of `name`.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.find(name, hash(name))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    fn find(&self, name: &str, h: u64) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = (h as usize) & mask;
        loop {
            let slot = *self.slots.get(at)?;
            if slot == 0 {
                return None;
            }
            let i = slot as usize - 1;
            if self.hashes[i] == h && self.name(i) == name.as_bytes() {
                return Some(i);
            }
            at = (at + 1) & mask;
        }
    }
}

/// The name index of `cluster`'s nodes.
pub fn node_index(cluster: &Cluster) -> NameIndex {
    NameIndex::new(cluster.nodes().iter().map(|n| &*n.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..5_000).map(|i| format!("node-{i}")).collect();
        let index = NameIndex::new(names.iter().map(String::as_str));
        assert_eq!(index.len(), 5_000);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(index.get(n), Some(i), "{n}");
        }
        for absent in ["", "node-", "node-5000", "node-01", "node-1 ", "NODE-1"] {
            assert_eq!(index.get(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn a_repeated_name_keeps_its_first_position_and_empty_indexes_answer_none() {
        let index = NameIndex::new(["a", "b", "a", ""].into_iter());
        assert_eq!(index.get("a"), Some(0));
        assert_eq!(index.get("b"), Some(1));
        assert_eq!(index.get(""), Some(3));
        assert_eq!(NameIndex::default().get("a"), None);
        assert!(NameIndex::default().is_empty());
    }
}
