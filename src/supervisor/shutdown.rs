//! Shutdown: every pool (replica-set members too) stops serving and closes its idle
//! connections at once; checked-out ones are waited for until the deadline, then the pool
//! actors stop.

use actix::prelude::*;
use tokio::time::Instant;

use super::actor::Supervisor;
use super::messages::Shutdown;
use super::stats::ShutdownReport;
use crate::backends::Backend;
use crate::pool::messages::Close;

impl<B: Backend> Handler<Shutdown> for Supervisor<B> {
    type Result = ResponseFuture<ShutdownReport>;
    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stop_accepting();
        // Replica-set members are pools too: close them with the rest; their actors stop
        // when their set actor does.
        let mut entries = self.member_entries();
        self.registry_mut().count_destroyed(entries.len());
        entries.extend(self.registry_mut().drain());
        for (_, set) in self.sets_mut().drain() {
            set.addr.do_send(Close);
        }
        let deadline = crate::limits::deadline(Instant::now(), msg.deadline);
        let mut report = ShutdownReport {
            pools_closed: entries.len(),
            ..ShutdownReport::default()
        };
        for e in &entries {
            report.connections_closed += e.shared.close(true);
        }
        Box::pin(async move {
            for e in &entries {
                report.still_checked_out += e.shared.wait_returned(deadline).await;
            }
            for e in entries {
                e.addr.do_send(Close);
            }
            tracing::info!(?report, "supervisor shut down");
            report
        })
    }
}
