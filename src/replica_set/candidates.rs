//! The members a read may go to, as a set of indexes: one word on the stack for a set of
//! up to 64 members (no allocation on the read path), more words on the heap beyond.
//! Counting, the n-th member and the next one at or after a round-robin turn are a few bit
//! operations a word.

/// A set of member indexes below the length it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidates {
    inline: u64,
    /// Empty (not allocated) for up to 64 members.
    heap: Vec<u64>,
    len: usize,
}

impl Candidates {
    /// An empty set for indexes below `len`.
    #[inline]
    pub(crate) fn new(len: usize) -> Self {
        Self {
            inline: 0,
            heap: if len > 64 {
                vec![0; len.div_ceil(64)]
            } else {
                Vec::new()
            },
            len: 0,
        }
    }

    #[inline]
    fn words(&self) -> &[u64] {
        if self.heap.is_empty() {
            std::slice::from_ref(&self.inline)
        } else {
            &self.heap
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, i: usize) {
        let word = if self.heap.is_empty() {
            &mut self.inline
        } else {
            &mut self.heap[i / 64]
        };
        let bit = 1 << (i % 64);
        self.len += usize::from(*word & bit == 0);
        *word |= bit;
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The indexes, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(k, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let bit = w.trailing_zeros() as usize;
                    w &= w - 1;
                    k * 64 + bit
                })
            })
        })
    }

    /// The `n`-th index (from 0), in order.
    #[inline]
    pub(crate) fn nth(&self, mut n: usize) -> Option<usize> {
        if self.heap.is_empty() {
            // One word, whose count is `len`: no population count (a dozen instructions
            // where the target has no `popcnt`, twice a power-of-two read).
            if n >= self.len {
                return None;
            }
            return Some(nth_bit(self.inline, n));
        }
        for (k, &w) in self.words().iter().enumerate() {
            let ones = w.count_ones() as usize;
            if n < ones {
                return Some(k * 64 + nth_bit(w, n));
            }
            n -= ones;
        }
        None
    }

    /// The first index at or after `start`, else the first of all (wrapping).
    #[inline]
    pub(crate) fn first_from(&self, start: usize) -> Option<usize> {
        let words = self.words();
        let (k0, bit) = (start / 64, start % 64);
        let at = |k: usize, w: u64| (w != 0).then(|| k * 64 + w.trailing_zeros() as usize);
        words
            .get(k0)
            .and_then(|&w| at(k0, w & (u64::MAX << bit)))
            .or_else(|| {
                let after = words.iter().enumerate().skip(k0 + 1);
                after
                    .chain(words.iter().enumerate().take(k0 + 1))
                    .find_map(|(k, &w)| at(k, w))
            })
    }
}

/// The position of the `n`-th set bit of `w` (from 0), which has more than `n`.
#[inline]
fn nth_bit(mut w: u64, n: usize) -> usize {
    for _ in 0..n {
        w &= w - 1;
    }
    w.trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(len: usize, items: &[usize]) -> Candidates {
        let mut c = Candidates::new(len);
        for &i in items {
            c.insert(i);
        }
        c
    }

    #[test]
    fn counts_finds_and_wraps_in_one_word_and_in_many() {
        for (len, items) in [
            (8, vec![1, 3, 6]),
            (64, vec![0, 63]),
            (200, vec![2, 64, 65, 130, 199]),
        ] {
            let mut c = of(len, &items);
            c.insert(items[0]);
            assert_eq!(c.len(), items.len(), "counted once");
            assert!(!c.is_empty());
            assert_eq!(c.iter().collect::<Vec<_>>(), items);
            for (n, &i) in items.iter().enumerate() {
                assert_eq!(c.nth(n), Some(i));
            }
            assert_eq!(c.nth(items.len()), None);
            for start in 0..len {
                let want = items
                    .iter()
                    .copied()
                    .find(|&i| i >= start)
                    .or(items.first().copied());
                assert_eq!(c.first_from(start), want, "{len} {start}");
            }
        }
        for len in [8, 100] {
            let empty = Candidates::new(len);
            assert!(empty.is_empty());
            assert_eq!(
                (empty.len(), empty.nth(0), empty.first_from(5)),
                (0, None, None)
            );
        }
    }
}
