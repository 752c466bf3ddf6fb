//! The supervisor's one timer for the maintenance of all its pools: a table of when each
//! pool is next due, walked by one task ([`Timetable::run`], on the supervisor's arbiter)
//! that sleeps until the earliest entry and tends every pool due by then, and runs the
//! jobs they hand it (refills, background probes) until they finish. A pool with nothing
//! due has no entry and costs no wake-up at all; what can give it something to do (an
//! acquire, a return, a close, a breaker transition) rings its [`Bell`], which makes it
//! due at once.
//!
//! Bounded: one slot per registered pool (freed when its actor is dropped), at most one
//! entry per slot, the wake-up is a [`Notify`] permit, not a queue, and a pool hands over
//! at most one refill and one probe per run (each answers at once while another of its
//! kind runs). Nothing here knows what a pool is: it tends [`Tend`] trait objects, held
//! weakly (their actors own them).

mod bell;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use std::task::Poll;

use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) use bell::Bell;

/// How long after a ring its pool is tended: the operation that rang (a return, a close)
/// has finished by then, so the pool is seen as it left it.
const SETTLE: Duration = Duration::from_millis(1);

/// Pools tended between two polls of their jobs: few enough that what a run touched is
/// still in cache when its probe runs.
const CHUNK: usize = 32;

/// Work a pool hands the timetable's task: it runs there until it finishes.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the timetable asks of a pool when it is due.
pub(crate) trait Tend: Send + Sync {
    /// Do what is due at `now`, pushing onto `jobs` what must wait on I/O; answer when
    /// the pool is next due (`None`: not until its bell rings).
    fn tend(&self, now: Instant, jobs: &mut Vec<Job>) -> Option<Instant>;
}

/// A pool's slot in a timetable: its index, and the generation of the index (a slot freed
/// and taken by another pool is not rung by the first pool's bell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    id: u32,
    generation: u32,
}

struct Slot {
    pool: Option<Weak<dyn Tend>>,
    generation: u32,
    /// When it is due; in `Table::order` exactly when `Some`.
    due: Option<Instant>,
    /// Being tended now: a ring is remembered in `rung` and honoured when it is done.
    tending: bool,
    rung: bool,
}

/// Emptied lists kept for reuse: enough for the grid points of a few seconds.
const SPARE_LISTS: usize = 1024;

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The slots due, by when. Pools due at the same instant (the grid makes that the rule)
    /// share one entry, so a run of many pools costs one tree operation per instant.
    order: BTreeMap<Instant, Vec<u32>>,
    /// Emptied lists, reused (at most [`SPARE_LISTS`]).
    spare: Vec<Vec<u32>>,
}

impl Table {
    fn slot(&mut self, ticket: Ticket) -> Option<&mut Slot> {
        self.slots
            .get_mut(ticket.id as usize)
            .filter(|s| s.generation == ticket.generation && s.pool.is_some())
    }

    fn set_due(&mut self, id: u32, due: Option<Instant>) {
        let slot = &mut self.slots[id as usize];
        if let Some(old) = std::mem::replace(&mut slot.due, due) {
            if let Entry::Occupied(mut listed) = self.order.entry(old) {
                let ids = listed.get_mut();
                if let Some(i) = ids.iter().position(|&x| x == id) {
                    ids.swap_remove(i);
                }
                if ids.is_empty() {
                    let ids = listed.remove();
                    self.recycle(ids);
                }
            }
        }
        if let Some(at) = due {
            let spare = &mut self.spare;
            self.order
                .entry(at)
                .or_insert_with(|| spare.pop().unwrap_or_default())
                .push(id);
        }
    }

    fn recycle(&mut self, mut ids: Vec<u32>) {
        if self.spare.len() < SPARE_LISTS {
            ids.clear();
            self.spare.push(ids);
        }
    }
}

/// The pools of one supervisor and when each is next due.
#[derive(Default)]
pub(crate) struct Timetable {
    table: Mutex<Table>,
    /// The earliest due time may have moved earlier (a pool added or rung).
    wake: Notify,
}

impl Timetable {
    /// Register `pool`, due at once.
    pub(crate) fn add(&self, pool: Weak<dyn Tend>) -> Ticket {
        let mut t = self.table.lock();
        let id = match t.free.pop() {
            Some(id) => id,
            None => {
                t.slots.push(Slot {
                    pool: None,
                    generation: 0,
                    due: None,
                    tending: false,
                    rung: false,
                });
                u32::try_from(t.slots.len() - 1).expect("fewer than 2^32 pools")
            }
        };
        let slot = &mut t.slots[id as usize];
        slot.pool = Some(pool);
        let ticket = Ticket {
            id,
            generation: slot.generation,
        };
        t.set_due(id, Some(Instant::now()));
        drop(t);
        self.wake.notify_one();
        ticket
    }

    /// Forget the pool of `ticket` (its actor is gone).
    pub(crate) fn remove(&self, ticket: Ticket) {
        let mut t = self.table.lock();
        if t.slot(ticket).is_none() {
            return;
        }
        t.set_due(ticket.id, None);
        let slot = &mut t.slots[ticket.id as usize];
        slot.pool = None;
        slot.generation = slot.generation.wrapping_add(1);
        (slot.tending, slot.rung) = (false, false);
        t.free.push(ticket.id);
    }

    /// Make the pool of `ticket` due now (after [`SETTLE`]), unless it is due sooner.
    pub(crate) fn ring(&self, ticket: Ticket) {
        let at = round_up(Instant::now() + SETTLE, SETTLE);
        let mut t = self.table.lock();
        let Some(slot) = t.slot(ticket) else {
            return;
        };
        if slot.tending {
            slot.rung = true;
            return;
        }
        if slot.due.is_some_and(|due| due <= at) {
            return;
        }
        t.set_due(ticket.id, Some(at));
        drop(t);
        self.wake.notify_one();
    }

    /// How many pools are registered, and how many of them are due at some time (the
    /// others wait for their bell).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let t = self.table.lock();
        let due = t.order.values().map(Vec::len).sum();
        (t.slots.len() - t.free.len(), due)
    }

    /// Take up to [`CHUNK`] more of the pools due by `now`, marked as being tended.
    fn take_due(&self, now: Instant, batch: &mut Vec<(Ticket, Arc<dyn Tend>)>) {
        let mut t = self.table.lock();
        while batch.len() < CHUNK {
            let id = {
                let Some(mut entry) = t.order.first_entry() else {
                    break;
                };
                if *entry.key() > now {
                    break;
                }
                let id = entry.get_mut().pop();
                if entry.get().is_empty() {
                    let ids = entry.remove();
                    t.recycle(ids);
                }
                match id {
                    Some(id) => id,
                    None => continue,
                }
            };
            let slot = &mut t.slots[id as usize];
            slot.due = None;
            if let Some(pool) = slot.pool.as_ref().and_then(Weak::upgrade) {
                slot.tending = true;
                let ticket = Ticket {
                    id,
                    generation: slot.generation,
                };
                batch.push((ticket, pool));
            }
        }
    }

    /// Tend the pools of `batch` at `now` and enter when each is next due.
    fn tend(
        &self,
        now: Instant,
        batch: &mut Vec<(Ticket, Arc<dyn Tend>)>,
        done: &mut Vec<(Ticket, Option<Instant>)>,
        jobs: &mut Vec<Job>,
    ) {
        for (ticket, pool) in batch.drain(..) {
            // A pool catches what its backend's code throws; this only keeps one pool's
            // bug from stopping every other pool's maintenance.
            let next = std::panic::catch_unwind(AssertUnwindSafe(|| pool.tend(now, jobs)))
                .unwrap_or_else(|_| {
                    tracing::error!("a pool's maintenance panicked; it waits for its bell");
                    None
                });
            done.push((ticket, next));
        }
        let mut t = self.table.lock();
        for (ticket, next) in done.drain(..) {
            let Some(slot) = t.slot(ticket) else {
                continue;
            };
            slot.tending = false;
            let next = if std::mem::take(&mut slot.rung) {
                Some(round_up(now + SETTLE, SETTLE))
            } else {
                next
            };
            t.set_due(ticket.id, next);
        }
    }

    /// When the next pool is due.
    fn next_due(&self) -> Option<Instant> {
        self.table.lock().order.keys().next().copied()
    }

    /// Tend the pools as they come due, and run their jobs, for as long as the future is
    /// polled (the supervisor's arbiter runs it; it never blocks: a run does no I/O, and
    /// the jobs are futures polled here).
    pub(crate) async fn run(self: Arc<Self>) {
        let (mut batch, mut done, mut handed) = (Vec::new(), Vec::new(), Vec::new());
        let mut jobs = FuturesUnordered::new();
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let now = Instant::now();
            loop {
                self.take_due(now, &mut batch);
                if batch.is_empty() {
                    break;
                }
                self.tend(now, &mut batch, &mut done, &mut handed);
                // Most jobs finish at their first poll, which comes while what their run
                // touched is still in cache; only those that wait are kept and polled
                // again when woken.
                let (handed, jobs) = (&mut handed, &mut jobs);
                std::future::poll_fn(move |cx| {
                    for mut job in handed.drain(..) {
                        if job.as_mut().poll(cx).is_pending() {
                            jobs.push(job);
                        }
                    }
                    Poll::Ready(())
                })
                .await;
            }
            let next = self.next_due();
            let woken = self.wake.notified();
            if let Some(at) = next {
                sleep.as_mut().reset(at);
            }
            tokio::select! {
                () = &mut sleep, if next.is_some() => {}
                () = woken => {}
                Some(()) = jobs.next(), if !jobs.is_empty() => {}
            }
        }
    }
}

/// The grid due times of something every `interval` are put on, so that many pools are
/// tended on one wake-up: a sixteenth of `interval`, from 1 ms to 250 ms (the defaults
/// give 62.5 ms for maintenance and 250 ms for probes, 4 wake-ups a second at most).
pub(crate) fn grid(interval: Duration) -> Duration {
    (interval / 16).clamp(Duration::from_millis(1), Duration::from_millis(250))
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    Instant::from_std(*EPOCH.get_or_init(std::time::Instant::now))
}

/// Nanoseconds from the grid's origin to `at`, and `unit` in nanoseconds; `None` when the
/// grid cannot place `at` (before the origin, a zero or huge unit).
fn on_grid(at: Instant, unit: Duration) -> Option<(Instant, u64, u64)> {
    let epoch = epoch();
    let unit = u64::try_from(unit.as_nanos()).ok().filter(|&u| u > 0)?;
    let since = u64::try_from(at.checked_duration_since(epoch)?.as_nanos()).ok()?;
    Some((epoch, since, unit))
}

/// `at` moved later to the next multiple of `unit` (counted from a fixed instant).
pub(crate) fn round_up(at: Instant, unit: Duration) -> Instant {
    match on_grid(at, unit) {
        Some((epoch, since, unit)) => {
            epoch + Duration::from_nanos(since.div_ceil(unit).saturating_mul(unit))
        }
        None => at,
    }
}

/// `at` moved earlier to a multiple of `unit`, but never to `after` or before it.
pub(crate) fn round_down(at: Instant, unit: Duration, after: Instant) -> Instant {
    match on_grid(at, unit) {
        Some((epoch, since, unit)) => {
            let down = epoch + Duration::from_nanos(since / unit * unit);
            if down > after {
                down
            } else {
                at
            }
        }
        None => at,
    }
}

#[cfg(test)]
mod tests;
