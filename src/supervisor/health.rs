//! `HealthCheck`: a probe of every pool, each bounded, answered as one report.

use actix::prelude::*;

use super::actor::Supervisor;
use super::messages::HealthCheck;
use super::stats::{HealthReport, HealthStatus};
use crate::backends::Backend;
use crate::pool::messages::Probe;

impl<B: Backend> Handler<HealthCheck> for Supervisor<B> {
    type Result = ResponseFuture<HealthReport>;
    fn handle(&mut self, _: HealthCheck, _: &mut Self::Context) -> Self::Result {
        let timeout = self.config().health_timeout;
        let probes: Vec<_> = self
            .all_pools()
            .into_iter()
            .map(|e| {
                let key = e.shared.key;
                let request = e.addr.send(Probe { timeout });
                async move {
                    // The probe bounds itself; this bounds a stuck mailbox.
                    let verdict = match tokio::time::timeout(timeout.saturating_mul(2), request)
                        .await
                    {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => Err(format!("pool actor unavailable: {e}")),
                        Err(_) => Err(format!("no answer within {:?}", timeout.saturating_mul(2))),
                    };
                    (key, verdict)
                }
            })
            .collect();
        Box::pin(async move {
            let results = futures::future::join_all(probes).await;
            let total = results.len();
            let mut unhealthy: Vec<_> = results
                .into_iter()
                .filter_map(|(k, r)| r.err().map(|e| (k, e)))
                .collect();
            unhealthy.sort();
            let healthy = total - unhealthy.len();
            let status = match (healthy, unhealthy.len()) {
                (_, 0) => HealthStatus::Healthy,
                (0, _) => HealthStatus::Unhealthy,
                _ => HealthStatus::Degraded,
            };
            HealthReport {
                status,
                healthy,
                unhealthy,
            }
        })
    }
}
