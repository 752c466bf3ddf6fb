//! The supervisor's own timers: reaping pools unused for `pool_idle_timeout`, and the
//! timetable that tends every pool's maintenance (`crate::timetable`), run as one future
//! of this actor (a restarted supervisor runs it again; its pools keep their entries).

use std::sync::Arc;

use actix::prelude::*;

use super::actor::Supervisor;
use crate::backends::Backend;

impl<B: Backend> Actor for Supervisor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(idle) = self.config().pool_idle_timeout {
            ctx.run_interval(self.config().reap_interval, move |act, _| {
                act.registry_mut().reap(idle);
            });
        }
        ctx.spawn(fut::wrap_future(Arc::clone(self.timetable()).run()));
    }
}
