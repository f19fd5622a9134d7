//! Which offsets may be committed.
//!
//! A consumed record is *settled* once every part of it is done: each of its documents indexed
//! or found to be a duplicate, each invalid event dead-lettered, each ERROR log forwarded. Work
//! finishes out of order (parallel bulk requests, retries), so a partition may only commit up
//! to its lowest unsettled offset:
//!
//! 1. [`OffsetTracker::consumed`] records an offset with the number of parts to wait for
//!    (records arrive in offset order per partition).
//! 2. [`OffsetTracker::settle`] counts one part of it done.
//! 3. [`OffsetTracker::commit_point`] is the lowest unsettled offset of the partition, or one
//!    past the highest consumed when nothing is pending: the Kafka "next offset to read" that
//!    is safe to commit. Everything below it is settled.
//! 4. [`OffsetTracker::forget`] drops a partition on revocation; late settlements for it are
//!    ignored (its next owner re-reads from the last commit, and ids absorb the duplicates).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A topic partition. The topic is shared (`Arc`) because every record carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: Arc<str>,
    pub partition: i32,
}

#[derive(Debug, Default)]
struct Partition {
    /// Unsettled offsets and how many parts each still waits for.
    pending: BTreeMap<i64, u32>,
    /// One past the highest offset consumed.
    next: Option<i64>,
}

/// Settlement bookkeeping for all assigned partitions. Owned by the consumer task; settlements
/// reach it through a channel.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, Partition>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a consumed offset that waits for `parts` settlements (0: settled already).
    pub fn consumed(&mut self, key: &PartitionKey, offset: i64, parts: u32) {
        let p = match self.partitions.get_mut(key) {
            Some(p) => p,
            None => self.partitions.entry(key.clone()).or_default(),
        };
        debug_assert!(
            p.next.is_none_or(|n| offset >= n),
            "offsets must be consumed in order"
        );
        p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
        if parts > 0 {
            *p.pending.entry(offset).or_insert(0) += parts;
        }
    }

    /// Counts one part of `offset` as done. Returns false when the offset is unknown (its
    /// partition was revoked, or it was settled already).
    pub fn settle(&mut self, key: &PartitionKey, offset: i64) -> bool {
        let Some(p) = self.partitions.get_mut(key) else {
            return false;
        };
        let Some(left) = p.pending.get_mut(&offset) else {
            return false;
        };
        *left -= 1;
        if *left == 0 {
            p.pending.remove(&offset);
        }
        true
    }

    /// The offset this partition may commit, if it consumed anything.
    pub fn commit_point(&self, key: &PartitionKey) -> Option<i64> {
        let p = self.partitions.get(key)?;
        p.pending.keys().next().copied().or(p.next)
    }

    /// Commit points of every partition.
    pub fn commit_points(&self) -> impl Iterator<Item = (&PartitionKey, i64)> {
        self.partitions
            .keys()
            .filter_map(|k| self.commit_point(k).map(|o| (k, o)))
    }

    /// Unsettled offsets over all partitions.
    pub fn pending(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }

    /// Drops a revoked partition.
    pub fn forget(&mut self, key: &PartitionKey) {
        self.partitions.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: Arc::from("apm.logs"),
            partition: p,
        }
    }

    #[test]
    fn commits_only_up_to_the_lowest_unsettled_offset() {
        let mut t = OffsetTracker::new();
        let k = key(0);
        assert_eq!(t.commit_point(&k), None);
        t.consumed(&k, 10, 1);
        t.consumed(&k, 11, 2);
        t.consumed(&k, 12, 1);
        assert_eq!(t.commit_point(&k), Some(10));
        assert!(t.settle(&k, 12));
        assert_eq!(t.commit_point(&k), Some(10), "12 done but 10 is not");
        assert!(t.settle(&k, 10));
        assert_eq!(t.commit_point(&k), Some(11));
        assert!(t.settle(&k, 11));
        assert_eq!(t.commit_point(&k), Some(11), "11 waits for its second part");
        assert!(t.settle(&k, 11));
        assert_eq!(t.commit_point(&k), Some(13));
        assert!(!t.settle(&k, 11), "already settled");
    }

    #[test]
    fn records_without_parts_are_settled_at_once() {
        let mut t = OffsetTracker::new();
        t.consumed(&key(1), 5, 0);
        assert_eq!(t.commit_point(&key(1)), Some(6));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn forgotten_partitions_ignore_late_settlements() {
        let mut t = OffsetTracker::new();
        t.consumed(&key(2), 0, 1);
        t.forget(&key(2));
        assert!(!t.settle(&key(2), 0));
        assert_eq!(t.commit_point(&key(2)), None);
    }

    proptest! {
        /// Whatever the order of settlements, the commit point never passes an unsettled
        /// offset, and ends one past the last offset once all are settled.
        #[test]
        fn commit_point_never_passes_unsettled_work(
            parts in prop::collection::vec(0u32..3, 1..40),
            seed in any::<u64>(),
        ) {
            let k = key(0);
            let mut t = OffsetTracker::new();
            let mut work = Vec::new();
            for (offset, n) in parts.iter().enumerate() {
                t.consumed(&k, offset as i64, *n);
                for _ in 0..*n { work.push(offset as i64); }
            }
            // Deterministic shuffle.
            let mut state = seed | 1;
            for i in (1..work.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                work.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut left: BTreeMap<i64, u32> = BTreeMap::new();
            for o in &work { *left.entry(*o).or_default() += 1; }
            for o in work {
                prop_assert!(t.settle(&k, o));
                let l = left.get_mut(&o).unwrap();
                *l -= 1;
                if *l == 0 { left.remove(&o); }
                let point = t.commit_point(&k).unwrap();
                if let Some(lowest) = left.keys().next() {
                    prop_assert_eq!(point, *lowest);
                }
            }
            prop_assert_eq!(t.commit_point(&k), Some(parts.len() as i64));
        }
    }
}
