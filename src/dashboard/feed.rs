//! The collector: one actor per dashboard scope that takes a snapshot every interval,
//! records breaker transitions and role changes as they are published, and hands both to
//! every browser through that browser's own bounded channel. It never waits for a browser:
//! a message that does not fit is dropped and counted, a closed channel is forgotten.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use actix_web::web::Bytes;
use tokio::sync::mpsc;

use super::snapshot::{
    breaker_name, event_frame, gather, render, role_name, unix_ms_of, with_feed, EventRecord,
    FeedFigures, Health,
};
use super::DashboardConfig;
use crate::backends::Backend;
use crate::replica_set::messages::RoleChanged;
use crate::supervisor::events::BreakerTransition;
use crate::supervisor::handle::SupervisorHandle;

/// Figures shared with whoever started the dashboard ([`DashboardServer`](super::DashboardServer)).
#[derive(Debug, Default)]
pub(crate) struct FeedCounters {
    /// Updates dropped because a browser's channel was full, all browsers together.
    pub(crate) dropped: AtomicU64,
    /// Streams open now.
    pub(crate) clients: AtomicUsize,
}

/// One browser's stream.
struct Client {
    tx: mpsc::Sender<Bytes>,
    dropped: u64,
}

/// The collector.
pub(crate) struct Feed<B: Backend> {
    sup: SupervisorHandle<B>,
    config: DashboardConfig,
    counters: Arc<FeedCounters>,
    clients: Vec<Client>,
    breaker_log: VecDeque<EventRecord>,
    role_log: VecDeque<EventRecord>,
    seq: u64,
    /// The last snapshot (JSON without `feed`), for a browser that joins between two.
    latest: Option<Arc<str>>,
    health: Option<Health>,
    health_due: Option<tokio::time::Instant>,
    collecting: bool,
}

impl<B: Backend> Feed<B> {
    pub(crate) fn new(
        sup: SupervisorHandle<B>,
        config: DashboardConfig,
        counters: Arc<FeedCounters>,
    ) -> Self {
        Self {
            sup,
            config,
            counters,
            clients: Vec::new(),
            breaker_log: VecDeque::new(),
            role_log: VecDeque::new(),
            seq: 0,
            latest: None,
            health: None,
            health_due: None,
            collecting: false,
        }
    }

    /// Offer `frame` to one client without waiting. `false`: the client is gone.
    fn offer(client: &mut Client, counters: &FeedCounters, frame: Bytes) -> bool {
        match client.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                client.dropped += 1;
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn figures(&self, client: &Client) -> FeedFigures {
        FeedFigures {
            clients: self.clients.len(),
            dropped: client.dropped,
            dropped_total: self.counters.dropped.load(Ordering::Relaxed),
            interval_ms: self.config.interval.as_millis() as u64,
        }
    }

    /// Send the latest snapshot to every client (each with its own feed figures).
    fn broadcast_snapshot(&mut self) {
        let Some(snapshot) = self.latest.clone() else {
            return;
        };
        let mut clients = std::mem::take(&mut self.clients);
        let before = clients.len();
        clients.retain_mut(|c| {
            let frame = with_feed(&snapshot, &self.figures_for(c, before));
            Self::offer(c, &self.counters, Bytes::from(frame))
        });
        self.clients = clients;
        self.counters
            .clients
            .store(self.clients.len(), Ordering::Relaxed);
    }

    fn figures_for(&self, client: &Client, clients: usize) -> FeedFigures {
        FeedFigures {
            clients,
            ..self.figures(client)
        }
    }

    /// Keep `record` (bounded) and send it to every client at once.
    fn publish(&mut self, record: EventRecord) {
        let frame = Bytes::from(event_frame(&record));
        let log = if record.kind == "breaker" {
            &mut self.breaker_log
        } else {
            &mut self.role_log
        };
        if log.len() >= self.config.history {
            log.pop_front();
        }
        log.push_back(record);
        let counters = Arc::clone(&self.counters);
        self.clients
            .retain_mut(|c| Self::offer(c, &counters, frame.clone()));
        self.counters
            .clients
            .store(self.clients.len(), Ordering::Relaxed);
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// One tick: gather (unless the last gathering is still under way, or nobody watches),
    /// then render and broadcast. Health is checked on its own schedule, beside.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.clients.retain(|c| !c.tx.is_closed());
        self.counters
            .clients
            .store(self.clients.len(), Ordering::Relaxed);
        if self.collecting || self.clients.is_empty() {
            return;
        }
        self.collecting = true;
        let now = tokio::time::Instant::now();
        if self.health_due.is_none_or(|due| now >= due) {
            self.health_due = Some(now + self.config.health_every);
            let sup = self.sup.clone();
            let timeout = self.config.health_every;
            ctx.spawn(
                async move { tokio::time::timeout(timeout, sup.health()).await }
                    .into_actor(self)
                    .map(|r, act, _| {
                        if let Ok(Ok(report)) = r {
                            act.health = Some(report.into());
                        }
                    }),
            );
        }
        let sup = self.sup.clone();
        ctx.spawn(
            async move { gather(&sup).await }
                .into_actor(self)
                .map(|gathered, act, _| {
                    act.collecting = false;
                    let json = render(
                        gathered,
                        act.health.as_ref(),
                        &act.breaker_log,
                        &act.role_log,
                    );
                    act.latest = Some(Arc::from(json));
                    act.broadcast_snapshot();
                }),
        );
    }
}

impl<B: Backend> Actor for Feed<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Events are offered with `try_send`: room for bursts (a whole set failing over).
        ctx.set_mailbox_capacity(1024);
        let sup = self.sup.clone();
        let breaker = ctx.address().recipient::<BreakerTransition>();
        let roles = ctx.address().recipient::<RoleChanged>();
        ctx.spawn(
            async move {
                if let Err(e) = sup.subscribe(breaker).await {
                    tracing::warn!(error = %e, "dashboard: cannot subscribe to breaker transitions");
                }
                if let Err(e) = sup.subscribe_topology(roles).await {
                    tracing::warn!(error = %e, "dashboard: cannot subscribe to role changes");
                }
            }
            .into_actor(self),
        );
        ctx.run_interval(self.config.interval, |act, ctx| act.tick(ctx));
    }
}

/// A browser joins: its end of a fresh bounded channel, the latest snapshot already in it;
/// `None` when [`DashboardConfig::max_clients`] streams are open.
pub(crate) struct Join;

impl Message for Join {
    type Result = Option<mpsc::Receiver<Bytes>>;
}

impl<B: Backend> Handler<Join> for Feed<B> {
    type Result = MessageResult<Join>;

    fn handle(&mut self, _: Join, ctx: &mut Self::Context) -> Self::Result {
        self.clients.retain(|c| !c.tx.is_closed());
        if self.clients.len() >= self.config.max_clients {
            return MessageResult(None);
        }
        let (tx, rx) = mpsc::channel(self.config.client_buffer);
        let mut client = Client { tx, dropped: 0 };
        // A comment line first, so the browser sees the stream open before the first data.
        Self::offer(
            &mut client,
            &self.counters,
            Bytes::from_static(b": poolwarden\n\n"),
        );
        let first = self.clients.is_empty();
        self.clients.push(client);
        self.counters
            .clients
            .store(self.clients.len(), Ordering::Relaxed);
        match &self.latest {
            Some(snapshot) if !first => {
                let last = self.clients.len() - 1;
                let frame = with_feed(snapshot, &self.figures(&self.clients[last]));
                Self::offer(&mut self.clients[last], &self.counters, Bytes::from(frame));
            }
            // Nobody watched until now: what `latest` holds may be old; take one now.
            _ => self.tick(ctx),
        }
        MessageResult(Some(rx))
    }
}

impl<B: Backend> Handler<BreakerTransition> for Feed<B> {
    type Result = ();

    fn handle(&mut self, t: BreakerTransition, _: &mut Self::Context) {
        let record = EventRecord {
            seq: self.next_seq(),
            kind: "breaker",
            at: unix_ms_of(t.at),
            key: t.key.to_hex(),
            set: None,
            host: None,
            from: breaker_name(t.from),
            to: breaker_name(t.to),
            reason: Some(t.reason),
        };
        self.publish(record);
    }
}

impl<B: Backend> Handler<RoleChanged> for Feed<B> {
    type Result = ();

    fn handle(&mut self, c: RoleChanged, _: &mut Self::Context) {
        let record = EventRecord {
            seq: self.next_seq(),
            kind: "role",
            at: unix_ms_of(c.at),
            key: c.key.to_hex(),
            set: Some(c.set),
            host: Some(c.host),
            from: role_name(c.from),
            to: role_name(c.to),
            reason: None,
        };
        self.publish(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::sim::SimBackend;

    #[test]
    fn a_full_channel_drops_and_counts_and_a_closed_one_is_forgotten() {
        let counters = FeedCounters::default();
        let (tx, mut rx) = mpsc::channel(1);
        let mut client = Client { tx, dropped: 0 };
        let offer =
            |c: &mut Client, n: u8| Feed::<SimBackend>::offer(c, &counters, Bytes::from(vec![n]));
        assert!(offer(&mut client, 1));
        assert!(offer(&mut client, 2), "full: dropped, the client stays");
        assert!(offer(&mut client, 3));
        assert_eq!(client.dropped, 2);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(
            rx.try_recv().unwrap(),
            Bytes::from(vec![1]),
            "the oldest kept"
        );
        assert!(offer(&mut client, 4), "room again");
        drop(rx);
        assert!(!offer(&mut client, 5), "closed: forgotten");
    }
}
