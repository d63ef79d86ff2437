//! A cluster's nodes in shared blocks of [`BLOCK`]: copying a cluster copies one pointer per
//! block, and a change copies only the block it touches (copy on write). The extender makes a
//! new view per bind and per filter's hold; with one array of nodes each of those copied every
//! node (640 KiB and 5,000 reference counts at 5,000 nodes).

use std::ops::Index;
use std::sync::Arc;

use super::node::Node;

/// Nodes per shared block.
pub const BLOCK: usize = 64;

/// The nodes, in order; read like a slice (`nodes[i]`, `get`, `iter`, `len`).
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    blocks: Vec<Arc<[Node]>>,
    len: usize,
}

impl Nodes {
    pub fn new(nodes: Vec<Node>) -> Self {
        let len = nodes.len();
        let mut rest = nodes.into_iter();
        // Moved into their blocks, not cloned: a snapshot rebuild makes a cluster each time.
        let blocks = (0..len.div_ceil(BLOCK))
            .map(|_| rest.by_ref().take(BLOCK).collect())
            .collect();
        Nodes { blocks, len }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, index: usize) -> Option<&Node> {
        self.blocks.get(index / BLOCK)?.get(index % BLOCK)
    }

    #[inline]
    pub fn first(&self) -> Option<&Node> {
        self.get(0)
    }

    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            blocks: self.blocks.iter(),
            block: [].iter(),
            left: self.len,
        }
    }

    /// Node `index` to change: its block is copied first if another copy shares it.
    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Node> {
        let block = self.blocks.get_mut(index / BLOCK)?;
        if Arc::get_mut(block).is_none() {
            *block = block.iter().cloned().collect();
        }
        Arc::get_mut(block)?.get_mut(index % BLOCK)
    }
}

impl Index<usize> for Nodes {
    type Output = Node;

    #[inline]
    fn index(&self, index: usize) -> &Node {
        &self.blocks[index / BLOCK][index % BLOCK]
    }
}

impl PartialEq for Nodes {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = &'a Node;
    type IntoIter = Iter<'a>;

    #[inline]
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The nodes in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    blocks: std::slice::Iter<'a, Arc<[Node]>>,
    block: std::slice::Iter<'a, Node>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Node;

    #[inline]
    fn next(&mut self) -> Option<&'a Node> {
        loop {
            if let Some(node) = self.block.next() {
                self.left -= 1;
                return Some(node);
            }
            self.block = self.blocks.next()?.iter();
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(count: usize) -> Nodes {
        Nodes::new(
            (0..count)
                .map(|i| Node::new(format!("n{i}"), 1000, 1 << 30, 0, None).expect("node"))
                .collect(),
        )
    }

    #[test]
    fn reads_like_the_vector_it_was_made_from() {
        for count in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let n = nodes(count);
            assert_eq!(n.len(), count);
            assert_eq!(n.iter().len(), count);
            let names: Vec<String> = n.iter().map(|x| x.name.to_string()).collect();
            let want: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
            assert_eq!(names, want);
            for i in 0..count {
                assert_eq!(&*n[i].name, format!("n{i}"));
            }
            assert!(n.get(count).is_none());
            assert_eq!(n.first().is_none(), count == 0);
        }
    }

    #[test]
    fn a_change_copies_only_its_block_and_leaves_the_other_copy_alone() {
        let before = nodes(3 * BLOCK);
        let mut after = before.clone();
        after.get_mut(BLOCK + 2).expect("in range").cpu_free = 7;
        assert_eq!(
            before[BLOCK + 2].cpu_free,
            1000,
            "the copy it was made from is unchanged"
        );
        assert_eq!(after[BLOCK + 2].cpu_free, 7);
        assert_ne!(before, after);
        for b in [0, 2] {
            assert!(
                Arc::ptr_eq(&before.blocks[b], &after.blocks[b]),
                "block {b} still shared"
            );
        }
        assert!(!Arc::ptr_eq(&before.blocks[1], &after.blocks[1]));
        // A block no other copy holds is changed in place.
        let alone = after.blocks[1].as_ptr();
        after.get_mut(BLOCK).expect("in range").cpu_free = 9;
        assert_eq!(after.blocks[1].as_ptr(), alone);
        assert!(after.get_mut(3 * BLOCK).is_none());
    }
}
