//! A replica-set member's series: reads and writes routed to it, ejections and
//! readmissions, role changes and replication lag. Labelled with the member pool's label
//! and the set's name; registered when the member is added. Without the `metrics`
//! feature every call is empty.

use std::time::Duration;

use crate::backends::Role;

#[cfg(feature = "metrics")]
use super::names as n;

pub(crate) struct MemberObserver {
    #[cfg(feature = "metrics")]
    h: Box<Handles>,
}

#[cfg(feature = "metrics")]
struct Handles {
    reads: metrics::Counter,
    writes: metrics::Counter,
    ejections: metrics::Counter,
    readmissions: metrics::Counter,
    to_primary: metrics::Counter,
    to_replica: metrics::Counter,
    lag: metrics::Gauge,
}

impl MemberObserver {
    /// `pool`: the member pool's label; `set`: the set's name.
    pub(crate) fn new(pool: &str, set: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            n::describe();
            let (p, s) = (pool.to_string(), set.to_string());
            let c = |name: &'static str| metrics::counter!(name, n::POOL_NAME => p.clone(), n::SET => s.clone());
            let role = |r: Role| metrics::counter!(n::SET_ROLE_CHANGES, n::POOL_NAME => p.clone(), n::SET => s.clone(), n::TO => n::role(r));
            Self {
                h: Box::new(Handles {
                    reads: c(n::SET_READS),
                    writes: c(n::SET_WRITES),
                    ejections: c(n::SET_EJECTIONS),
                    readmissions: c(n::SET_READMISSIONS),
                    to_primary: role(Role::Primary),
                    to_replica: role(Role::Replica),
                    lag: metrics::gauge!(n::SET_LAG, n::POOL_NAME => p.clone(), n::SET => s.clone()),
                }),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (pool, set);
            Self {}
        }
    }

    pub(crate) fn read(&self) {
        #[cfg(feature = "metrics")]
        self.h.reads.increment(1);
    }

    pub(crate) fn write(&self) {
        #[cfg(feature = "metrics")]
        self.h.writes.increment(1);
    }

    pub(crate) fn ejected(&self) {
        #[cfg(feature = "metrics")]
        self.h.ejections.increment(1);
    }

    pub(crate) fn readmitted(&self) {
        #[cfg(feature = "metrics")]
        self.h.readmissions.increment(1);
    }

    pub(crate) fn role_changed(&self, to: Role) {
        #[cfg(feature = "metrics")]
        match to {
            Role::Primary => self.h.to_primary.increment(1),
            Role::Replica => self.h.to_replica.increment(1),
        }
        #[cfg(not(feature = "metrics"))]
        let _ = to;
    }

    pub(crate) fn lag(&self, lag: Option<Duration>) {
        #[cfg(feature = "metrics")]
        if let Some(l) = lag {
            self.h.lag.set(l.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = lag;
    }
}
