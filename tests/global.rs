//! The process-wide supervisor: installed once per backend type with its settings,
//! reachable from any thread and runtime, refused a second time; `global()` with nothing
//! installed starts the backend's default from the environment. (A process holds one per
//! backend type, so each test here uses a backend type of its own.)

mod common;

use poolwarden::backends::any::AnyBackend;
use poolwarden::backends::sim::SimBackend;
use poolwarden::{ConnectionConfig, Error, Settings, SupervisorHandle};

/// A backend type of its own for one test: the simulated backend under another name.
macro_rules! backend_type {
    ($name:ident) => {
        #[derive(Clone, Default)]
        struct $name(SimBackend);
        impl poolwarden::Backend for $name {
            type Connection = <SimBackend as poolwarden::Backend>::Connection;
            async fn connect(
                &self,
                cfg: &ConnectionConfig,
            ) -> Result<Self::Connection, poolwarden::BackendError> {
                poolwarden::Backend::connect(&self.0, cfg).await
            }
            async fn probe(
                &self,
                conn: &mut Self::Connection,
            ) -> Result<(), poolwarden::BackendError> {
                poolwarden::Backend::probe(&self.0, conn).await
            }
        }
    };
}

backend_type!(Installed);

#[test]
fn installed_once_then_reachable_from_any_thread_and_runtime() {
    let settings = Settings::from_toml_str(
        "[supervisor]\nmax_pools = 7\n[pools.orders]\nurl = \"sim://db1/orders\"",
    )
    .unwrap();
    // Installed outside any runtime: the supervisor has a thread of its own.
    SupervisorHandle::install_global(Installed::default(), settings.clone()).unwrap();
    match SupervisorHandle::install_global(Installed::default(), settings) {
        Err(e @ Error::AlreadyInstalled { .. }) => assert!(e.to_string().contains("Installed")),
        other => panic!("a second install must be refused: {other:?}"),
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let sup = SupervisorHandle::<Installed>::global().unwrap();
                    let pool = sup.lookup("orders").await.unwrap();
                    for _ in 0..10 {
                        match pool
                            .acquire_timeout(std::time::Duration::from_secs(3))
                            .await
                        {
                            Ok(c) => drop(c),
                            Err(e) => panic!("{e}: {:?}", pool.stats()),
                        }
                    }
                    pool.key()
                })
                .to_string()
            })
        })
        .collect();
    let keys: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one pool for all: {keys:?}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sup = SupervisorHandle::<Installed>::global().unwrap();
        let stats = sup.stats().await.unwrap();
        assert_eq!(stats.pools, 1);
        assert_eq!(stats.connections_served, 40);
    });
}

#[actix::test]
async fn global_without_install_starts_the_default_and_then_refuses_an_install() {
    let sup = SupervisorHandle::<AnyBackend>::global().unwrap();
    let pool = sup
        .pool(ConnectionConfig::parse("sim://primary/app").unwrap())
        .await
        .unwrap();
    drop(pool.acquire().await.unwrap());
    let again = SupervisorHandle::<AnyBackend>::global().unwrap();
    assert!(
        again.contains(pool.key()).await.unwrap(),
        "the same supervisor"
    );
    assert!(matches!(
        SupervisorHandle::install_global(AnyBackend::default(), Settings::default()),
        Err(Error::AlreadyInstalled { .. })
    ));
}

backend_type!(BadlyConfigured);

#[test]
fn a_bad_install_leaves_nothing_installed() {
    let mut bad = Settings::default();
    bad.supervisor.max_pools = 0;
    let e = SupervisorHandle::install_global(BadlyConfigured::default(), bad).unwrap_err();
    assert!(
        matches!(&e, Error::Config(c) if c.field == "supervisor.max_pools"),
        "{e}"
    );
    SupervisorHandle::install_global(BadlyConfigured::default(), Settings::default())
        .expect("the failed install installed nothing");
}
