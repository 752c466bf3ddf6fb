//! The slots' accounting under any sequence of takes, waits, cancellations, releases,
//! failures (`flood`), revivals (`settle`) and resizes: a slot is never handed out past
//! the pool's size, and once everything is back exactly the pool's size can be taken.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use proptest::prelude::*;

use super::{Slots, Taken};

#[derive(Debug, Clone)]
enum Op {
    TryTake,
    Wait,
    Poll(usize),
    Cancel(usize),
    Release,
    Fail,
    Revive,
    Resize(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TryTake),
        3 => Just(Op::Wait),
        4 => any::<usize>().prop_map(Op::Poll),
        1 => any::<usize>().prop_map(Op::Cancel),
        4 => Just(Op::Release),
        1 => Just(Op::Fail),
        1 => Just(Op::Revive),
        1 => (1u32..6).prop_map(Op::Resize),
    ]
}

type Waiter<'a> = Pin<Box<dyn Future<Output = Result<Taken, tokio::sync::AcquireError>> + 'a>>;

struct Model<'a> {
    slots: &'a Slots,
    overflow: u32,
    /// Slots handed out and not given back.
    held: usize,
    waiters: Vec<Waiter<'a>>,
}

impl<'a> Model<'a> {
    fn capacity(&self) -> usize {
        self.slots.max_size() + self.overflow as usize
    }

    fn got_slot(&mut self) {
        self.held += 1;
        assert!(
            self.held <= self.capacity(),
            "{} slots held, size {}",
            self.held,
            self.capacity()
        );
    }

    /// Poll waiter `i`; answers whether it finished.
    fn poll(&mut self, i: usize) -> bool {
        let mut cx = Context::from_waker(noop_waker_ref());
        match self.waiters[i].as_mut().poll(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(Taken::Slot)) => {
                self.got_slot();
                true
            }
            // Woken without a slot: a caller looks at the state and, here, leaves.
            Poll::Ready(Ok(Taken::Woken)) | Poll::Ready(Err(_)) => true,
        }
    }

    /// Poll every waiter: one still waiting means no permit is free.
    fn no_one_sleeps_beside_a_free_permit(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.poll(i) {
                drop(self.waiters.remove(i));
            } else {
                i += 1;
            }
        }
        if !self.waiters.is_empty() {
            let free = self.slots.free.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(
                free,
                0,
                "{} waiters asleep beside free permits",
                self.waiters.len()
            );
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::TryTake if self.slots.try_take().is_ok() => self.got_slot(),
            Op::Wait => {
                let slots = self.slots;
                self.waiters.push(Box::pin(slots.take()));
                let i = self.waiters.len() - 1;
                if self.poll(i) {
                    drop(self.waiters.remove(i));
                }
            }
            Op::Poll(i) if !self.waiters.is_empty() => {
                let i = i % self.waiters.len();
                if self.poll(i) {
                    drop(self.waiters.remove(i));
                }
            }
            Op::Cancel(i) if !self.waiters.is_empty() => {
                let i = i % self.waiters.len();
                drop(self.waiters.remove(i));
            }
            Op::Release if self.held > 0 => {
                self.held -= 1;
                self.slots.give_back(true);
            }
            Op::Fail => self.slots.flood(self.waiters.len()),
            Op::Revive => self.slots.settle(),
            Op::Resize(n) => {
                self.slots.resize(n, 0);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn slots_never_exceed_the_size_and_all_come_back(
        max in 1u32..6,
        overflow in 0u32..3,
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let slots = Slots::new(max, 0, overflow);
        let mut m = Model { slots: &slots, overflow, held: 0, waiters: Vec::new() };
        for op in ops {
            m.apply(op);
            m.no_one_sleeps_beside_a_free_permit();
        }
        // Everything comes back: waiters leave, holders give back, the pool is revived.
        m.waiters.clear();
        while m.held > 0 {
            m.apply(Op::Release);
        }
        slots.settle();
        let size = m.capacity();
        // Take every free permit: each is a slot or pays a debt left by a shrink.
        let mut taken = 0;
        while slots.free.load(std::sync::atomic::Ordering::Relaxed) + slots.permits.available_permits() > 0 {
            if slots.try_take().is_ok() {
                taken += 1;
            }
            prop_assert!(taken <= size, "more than {size} slots taken once all came back");
        }
        prop_assert_eq!(taken, size, "slots lost");
        prop_assert_eq!(slots.surplus.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
