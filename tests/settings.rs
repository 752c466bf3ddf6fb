//! Settings read once, however they arrive: a TOML file, `POOLWARDEN_*` environment
//! variables over it, or built in code — one validation, every bad value an error naming
//! its field as written, never a password; named pools registered without being created.

mod common;

use std::io::Write;

use poolwarden::backends::sim::SimBackend;
use poolwarden::{ConfigError, NamedPool, Settings, SupervisorHandle};

fn field(toml: &str) -> String {
    Settings::from_toml_str(toml).unwrap_err().field
}

#[test]
fn a_file_gives_the_supervisor_config_and_named_pools() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        r#"
        [supervisor]
        max_pools = 64
        pool_idle_timeout = "5m"
        [supervisor.default_pool]
        max_size = 8
        [pools.orders]
        url = "postgres://app:s3cret@db1:5433/orders"
        [pools.orders.pool]
        max_size = 16
        acquire_timeout = "2s"
        [pools.cache]
        connection = {{ backend = "redis", hosts = [{{ host = "127.0.0.1", port = 6379 }}] }}
        "#
    )
    .unwrap();
    let s = Settings::from_toml_file(file.path()).unwrap();
    assert_eq!(s.supervisor.max_pools, 64);
    assert_eq!(s.supervisor.default_pool.max_size, 8);
    let orders = s.pools["orders"].connection_config("orders").unwrap();
    assert_eq!(orders.hosts[0].port, 5433);
    assert_eq!(s.pools["orders"].pool.as_ref().unwrap().max_size, 16);
    assert_eq!(
        s.pools["cache"].connection_config("cache").unwrap().backend,
        "redis"
    );
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "Debug hides the URL's password"
    );
}

#[test]
fn every_bad_value_names_its_field_as_written() {
    assert_eq!(field("[supervisor]\nmax_pools = 0"), "supervisor.max_pools");
    assert_eq!(
        field("[supervisor.default_pool]\nmax_size = 0"),
        "supervisor.default_pool.max_size"
    );
    assert_eq!(
        field("[supervisor]\nmax_pools = \"many\""),
        "supervisor.max_pools"
    );
    assert_eq!(field("[supervisor]\nmax_pool = 3"), "supervisor.max_pool");
    assert_eq!(field("[pool]\nmax_size = 3"), "pool");
    assert_eq!(
        field("[pools.orders]\nurl = \"sim://db1/o\"\n[pools.orders.pool]\nmax_size = 0"),
        "pools.orders.pool.max_size"
    );
    assert_eq!(
        field("[pools.orders]\nurl = \"sim://db1/o\"\n[pools.orders.pool]\nidle_timeout = \"400days\""),
        "pools.orders.pool.idle_timeout"
    );
    assert_eq!(
        field("[pools.orders]\nurl = \"postgres://db1:0/o\""),
        "pools.orders.url"
    );
    assert_eq!(
        field("[pools.orders]\npool = { max_size = 2 }"),
        "pools.orders.url"
    );
    assert_eq!(
        field("[pools.o]\nurl = \"sim://a/b\"\nconnection = { backend = \"sim\", hosts = [{ host = \"a\", port = 1 }] }"),
        "pools.o.url"
    );
    assert_eq!(
        field(
            "[pools.o]\nconnection = { backend = \"sim\", hosts = [{ host = \"a\", port = 0 }] }"
        ),
        "pools.o.connection.hosts[0].port"
    );
    assert_eq!(field("[pools.\"\"]\nurl = \"sim://a/b\""), "pools");
    assert_eq!(field("not toml"), "settings");
}

#[test]
fn a_password_never_appears_in_an_error() {
    for toml in [
        "[pools.o]\nurl = \"postgres://app:hunter2@db1:0/o\"",
        "[pools.o]\nurl = \"postgres://app:hunter2@db1/o?sslmode=bogus\"",
        "[pools.o]\nurl = 12345678",
        "[pools.o]\nconnection = { backend = \"postgres\", hosts = [], password = \"hunter2\" }",
        "[pools.o]\nconnection = { backend = \"postgres\", hosts = [{ host = \"a\", port = 1 }], password = 12345678 }",
    ] {
        let e: ConfigError = Settings::from_toml_str(toml).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter2") && !text.contains("12345678"), "{text}");
    }
}

#[test]
fn a_missing_file_is_an_error_not_the_defaults() {
    let e = Settings::from_toml_file("/nonexistent/poolwarden.toml").unwrap_err();
    assert_eq!(e.field, "settings");
    assert!(e.reason.contains("does not exist"), "{e}");
    assert!(Settings::load(Some(std::path::Path::new("/nonexistent/x.toml"))).is_err());
}

#[test]
fn deserializing_directly_runs_the_same_validation() {
    let e = toml::from_str::<Settings>(
        "[pools.orders]\nurl = \"sim://db1/o\"\npool = { max_size = 0 }",
    )
    .unwrap_err();
    assert!(e.to_string().contains("pools.orders.pool.max_size"), "{e}");
    let mut s = Settings::default();
    s.pools.insert("x".into(), NamedPool::default());
    assert_eq!(s.validate().unwrap_err().field, "pools.x.url");
}

/// The only test touching the process environment (tests run on parallel threads).
#[test]
fn environment_variables_override_the_file_and_name_their_field() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[supervisor]\nmax_pools = 64\n[pools.orders]\nurl = \"sim://db1/orders\""
    )
    .unwrap();
    let set = |k: &str, v: &str| std::env::set_var(k, v);
    let clear = || {
        for (k, _) in std::env::vars() {
            if k.starts_with(poolwarden::ENV_PREFIX) {
                std::env::remove_var(k);
            }
        }
    };
    clear();
    set("POOLWARDEN_SUPERVISOR__MAX_POOLS", "32");
    set("POOLWARDEN_SUPERVISOR__DEFAULT_POOL__ACQUIRE_TIMEOUT", "3s");
    // An optional duration turned off from the environment.
    set("POOLWARDEN_SUPERVISOR__DEFAULT_POOL__IDLE_TIMEOUT", "off");
    set(
        "POOLWARDEN_POOLS__INVOICES__URL",
        "postgres://app:hunter2@db2/invoices",
    );
    set("POOLWARDEN_POOLS__INVOICES__POOL__MAX_SIZE", "4");
    let s = Settings::load(Some(file.path())).unwrap();
    assert_eq!(s.supervisor.max_pools, 32, "the environment wins");
    assert_eq!(
        s.supervisor.default_pool.acquire_timeout,
        std::time::Duration::from_secs(3)
    );
    assert_eq!(s.supervisor.default_pool.idle_timeout, None);
    assert!(s.pools.contains_key("orders") && s.pools.contains_key("invoices"));
    assert_eq!(s.pools["invoices"].pool.as_ref().unwrap().max_size, 4);
    assert_eq!(
        Settings::from_env().unwrap().pools.len(),
        1,
        "env alone: no file"
    );

    set("POOLWARDEN_POOLS__INVOICES__POOL__MAX_SIZE", "lots");
    let e = Settings::from_env().unwrap_err();
    assert_eq!(e.field, "pools.invoices.pool.max_size", "{e}");
    assert!(
        e.reason.contains("environment"),
        "says where the value came from: {e}"
    );
    set("POOLWARDEN_POOLS__INVOICES__POOL__MAX_SIZE", "0");
    assert_eq!(
        Settings::from_env().unwrap_err().field,
        "pools.invoices.pool.max_size"
    );
    set("POOLWARDEN_POOLS__INVOICES__POOL__MAX_SIZE", "4");
    set(
        "POOLWARDEN_POOLS__INVOICES__URL",
        "postgres://app:hunter2@db2:0/invoices",
    );
    let e = Settings::from_env().unwrap_err();
    assert_eq!(e.field, "pools.invoices.url");
    assert!(!format!("{e:?}").contains("hunter2"));
    clear();
    assert_eq!(Settings::from_env().unwrap(), Settings::default());
}

#[actix::test]
async fn named_pools_are_registered_but_created_on_first_lookup() {
    let s = Settings::from_toml_str(
        "[pools.orders]\nurl = \"sim://db1/orders\"\npool = { max_size = 3 }",
    )
    .unwrap();
    let sup = SupervisorHandle::start_with_settings(SimBackend::default(), &s).unwrap();
    assert!(sup.contains("orders").await.unwrap());
    let listed = sup.pools().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].running, "not created by installing the settings");
    assert_eq!(sup.stats().await.unwrap().pools, 0);
    let pool = sup.lookup("orders").await.unwrap();
    assert_eq!(pool.stats().max_size, 3, "its own pool config");
    drop(pool.acquire().await.unwrap());
    assert!(sup.pools().await.unwrap()[0].running);
}
