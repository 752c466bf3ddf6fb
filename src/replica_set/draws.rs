//! The random draws of routing (power of two, random, slow-start coins): SplitMix64, cheap
//! enough for every read (a few instructions a draw, where `rand::rng()` costs about a
//! hundred). Its words spread reads; they protect nothing.

use std::cell::Cell;

use rand::RngCore;

/// SplitMix64's step: `GAMMA` apart, consecutive states give independent-looking words.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A member's chance to take part in a read while it warms up, in thousandths (the
/// `warming` of a member view).
pub(crate) const WARM: u16 = 1000;

/// SplitMix64's output function: a well-mixed word from a state.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether warming member `i` takes part in the read whose coins are `seed`: a chance of
/// `share` in [`WARM`], the same answer however often it is asked.
pub(crate) fn coin(seed: u64, i: usize, share: u16) -> bool {
    let z = mix(seed.wrapping_add((i as u64 + 1).wrapping_mul(GAMMA)));
    (z % u64::from(WARM)) < u64::from(share)
}

/// A draw below `n` from 32 random bits (multiply and shift: a bias of at most
/// `n / 2^32`, nothing beside spreading reads).
pub(crate) fn below(bits: u32, n: usize) -> usize {
    ((u64::from(bits) * n as u64) >> 32) as usize
}

thread_local! {
    /// [`Draws`]' state on this thread; 0 until seeded.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// A thread's first state.
#[cold]
fn seed() -> u64 {
    rand::rng().next_u64()
}

/// The reading thread's generator: SplitMix64 over a word of the thread's, seeded from
/// `rand`'s thread generator on first use.
pub(crate) struct Draws;

impl RngCore for Draws {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let s = match STATE.get() {
            0 => seed(),
            s => s,
        }
        .wrapping_add(GAMMA);
        STATE.set(s);
        mix(s)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::rand_core::impls::fill_bytes_via_next(self, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_spread_and_below_stays_below() {
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            let i = below(Draws.next_u32(), 5);
            counts[i] += 1;
        }
        for c in counts {
            assert!((9_300..=10_700).contains(&c), "{counts:?}");
        }
        assert_eq!(below(u32::MAX, 3), 2);
        assert_eq!(below(0, 3), 0);
    }

    #[test]
    fn a_coin_is_the_same_however_often_it_is_asked_and_fair() {
        let mut yes = 0;
        for _ in 0..10_000 {
            let seed = Draws.next_u64();
            let first = coin(seed, 2, 300);
            assert_eq!(first, coin(seed, 2, 300));
            yes += usize::from(first);
        }
        assert!((2_800..=3_200).contains(&yes), "{yes}");
        assert!(!coin(7, 0, 0));
        assert!(coin(7, 0, WARM));
    }
}
