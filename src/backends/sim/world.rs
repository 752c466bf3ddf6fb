//! The world: [`SimBackend`] and the servers it names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{SimBehavior, SimServer};
#[cfg(doc)]
use crate::backends::Backend;

struct World {
    seed: u64,
    next_conn_id: Arc<AtomicU64>,
    default_behavior: Mutex<SimBehavior>,
    servers: Mutex<BTreeMap<String, SimServer>>,
}

/// The simulated world: a set of named servers, and the [`Backend`] connecting to them.
///
/// Cloning shares the world. [`Default`] is `SimBackend::new(0)`.
#[derive(Clone)]
pub struct SimBackend {
    world: Arc<World>,
}

impl SimBackend {
    /// An empty world whose random failures are drawn from generators seeded by `seed`:
    /// the same seed and the same operations give the same failures.
    pub fn new(seed: u64) -> Self {
        Self {
            world: Arc::new(World {
                seed,
                next_conn_id: Arc::new(AtomicU64::new(1)),
                default_behavior: Mutex::new(SimBehavior::default()),
                servers: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The server called `name`, created with the default behaviour on first use. A config
    /// connects to `server(&config.primary_host())`.
    pub fn server(&self, name: &str) -> SimServer {
        let mut servers = self.world.servers.lock();
        if let Some(server) = servers.get(name) {
            return server.clone();
        }
        let behavior = self.world.default_behavior.lock().clone();
        let server = SimServer::create(
            name,
            server_seed(self.world.seed, name),
            behavior,
            self.world.next_conn_id.clone(),
        );
        servers.insert(name.to_owned(), server.clone());
        server
    }

    /// The behaviour of servers created after this call. Existing servers keep theirs.
    pub fn set_default_behavior(&self, b: SimBehavior) {
        *self.world.default_behavior.lock() = b;
    }

    /// Every server created so far, sorted by name.
    pub fn servers(&self) -> Vec<SimServer> {
        self.world.servers.lock().values().cloned().collect()
    }
}

impl Default for SimBackend {
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.world.servers.lock().keys().cloned().collect();
        f.debug_struct("SimBackend")
            .field("seed", &self.world.seed)
            .field("servers", &names)
            .finish()
    }
}

/// A stable (process- and run-independent) seed for the server `name` of a world.
pub(super) fn server_seed(world_seed: u64, name: &str) -> u64 {
    // FNV-1a: std's hashers are randomly keyed.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    world_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hash
}
