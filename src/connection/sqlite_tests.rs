//! Unit tests of SQLite configs: URL forms, validation, options, Display, the pool key.

use super::*;
use crate::key::PoolKey;
use crate::secret::Secret;

fn path_of(url: &str) -> PathBuf {
    ConnectionConfig::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .path
        .unwrap()
}

fn field(url: &str) -> String {
    match ConnectionConfig::parse(url) {
        Ok(c) => panic!("{url} was accepted: {c:?}"),
        Err(e) => e.field,
    }
}

#[test]
fn url_forms() {
    assert_eq!(path_of("sqlite:///abs/path.db"), Path::new("/abs/path.db"));
    assert_eq!(path_of("sqlite://relative.db"), Path::new("relative.db"));
    assert_eq!(path_of("sqlite://data/app.db"), Path::new("data/app.db"));
    assert_eq!(path_of("sqlite:relative.db"), Path::new("relative.db"));
    assert_eq!(path_of("sqlite:/abs.db"), Path::new("/abs.db"));
    assert_eq!(path_of("sqlite://./a.db"), Path::new("./a.db"));
    assert_eq!(path_of("sqlite::memory:"), Path::new(MEMORY));
    assert_eq!(path_of("sqlite://:memory:"), Path::new(MEMORY));
    assert_eq!(
        path_of("sqlite:///my%20dir/a%40b.db"),
        Path::new("/my dir/a@b.db")
    );
    let c = ConnectionConfig::parse("sqlite:///a.db?mode=ro&busy_timeout=250ms").unwrap();
    assert!(c.hosts.is_empty());
    assert_eq!(c.backend, "sqlite");
    assert_eq!(c.options["mode"], "ro");
    assert_eq!(c, {
        let mut d = ConnectionConfig::sqlite("/a.db");
        d.options.insert("mode".into(), "ro".into());
        d.options.insert("busy_timeout".into(), "250ms".into());
        d
    });
}

#[test]
fn bad_urls_name_the_field() {
    for (url, want) in [
        ("sqlite://", "connection.path"),
        ("sqlite:", "connection.path"),
        ("sqlite:///", "connection.path"),
        ("sqlite:///dir/", "connection.path"),
        ("sqlite://..", "connection.path"),
        ("sqlite://db:5432/a.db", "connection.hosts[0].port"),
        ("sqlite://localhost/a.db", "connection.hosts"),
        ("sqlite://[::1]/a.db", "connection.hosts"),
        ("sqlite://app@/a.db", "connection.user"),
        ("sqlite://app:pw@x/a.db", "connection.password"),
        ("sqlite:///a.db?password=pw", "connection.password"),
        ("sqlite:///a.db?user=u", "connection.user"),
        ("sqlite:///a.db?sslmode=require", "connection.tls.mode"),
        ("sqlite:///a.db?dbname=x", "connection.database"),
        ("sqlite:///a.db?colour=blue", "connection.options"),
        ("sqlite:///a.db?mode=rx", "connection.options.mode"),
        (
            "sqlite:///a.db?busy_timeout=soon",
            "connection.options.busy_timeout",
        ),
        (
            "sqlite:///a.db?busy_timeout=30days",
            "connection.options.busy_timeout",
        ),
        (
            "sqlite:///a.db?busy_timeout=500us",
            "connection.options.busy_timeout",
        ),
        (
            "sqlite:///a.db?busy_timeout=1500us",
            "connection.options.busy_timeout",
        ),
        (
            "sqlite:///a.db?journal_mode=fast",
            "connection.options.journal_mode",
        ),
        (
            "sqlite:///a.db?mode=ro&journal_mode=wal",
            "connection.options.journal_mode",
        ),
        (
            "sqlite:///a.db?foreign_keys=maybe",
            "connection.options.foreign_keys",
        ),
        ("sqlite::memory:?mode=ro", "connection.options.mode"),
        (
            "sqlite::memory:?journal_mode=wal",
            "connection.options.journal_mode",
        ),
        ("sqlite:///a.db?mode=ro&mode=rw", "connection.options"),
        ("sqlite:///a.db#frag", "connection.url"),
        ("sqlite://a:b/c.db", "connection.url"),
        ("sqlite:///a%zz.db", "connection.path"),
    ] {
        assert_eq!(field(url), want, "{url}");
    }
}

#[test]
fn validate_is_the_one_path() {
    let ok = ConnectionConfig::sqlite("/tmp/a.db");
    ok.validate().unwrap();
    type Change = fn(&mut ConnectionConfig);
    let cases: Vec<(Change, &str)> = vec![
        (|c| c.path = None, "connection.path"),
        (|c| c.path = Some("".into()), "connection.path"),
        (|c| c.path = Some("a\0b".into()), "connection.path"),
        (
            |c| {
                c.hosts.push(crate::Host {
                    host: "db".into(),
                    port: 5432,
                })
            },
            "connection.hosts",
        ),
        (|c| c.user = Some("u".into()), "connection.user"),
        (
            |c| c.password = Some(Secret::new("pw")),
            "connection.password",
        ),
        (|c| c.database = Some("x".into()), "connection.database"),
        (
            |c| c.application_name = Some("x".into()),
            "connection.application_name",
        ),
        (
            |c| c.tls.mode = crate::SslMode::Require,
            "connection.tls.mode",
        ),
        (
            |c| c.tls.ca_file = Some("/ca.pem".into()),
            "connection.tls.ca_file",
        ),
        (
            |c| {
                c.options.insert("sslmode".into(), "x".into());
            },
            "connection.options",
        ),
        (
            |c| {
                c.options.insert("cache".into(), "shared".into());
            },
            "connection.options",
        ),
    ];
    for (change, want) in cases {
        let mut c = ok.clone();
        change(&mut c);
        assert_eq!(c.validate().unwrap_err().field, want, "{c:?}");
    }
    // A path is for sqlite only; every other backend still needs hosts.
    let mut pg = ConnectionConfig::new("postgres", "db", 5432);
    pg.path = Some("/a.db".into());
    assert_eq!(pg.validate().unwrap_err().field, "connection.path");
    let mut no_hosts = ConnectionConfig::sqlite("/a.db");
    no_hosts.backend = "postgres".into();
    no_hosts.path = None;
    assert_eq!(no_hosts.validate().unwrap_err().field, "connection.hosts");
}

#[test]
fn toml_goes_through_validate() {
    let c: ConnectionConfig = toml::from_str("backend = \"sqlite\"\npath = \":memory:\"").unwrap();
    assert_eq!(c, ConnectionConfig::sqlite(MEMORY));
    for (text, want) in [
        ("backend = \"sqlite\"", "connection.path"),
        (
            "backend = \"sqlite\"\npath = \"/a.db\"\nhosts = [{ host = \"h\", port = 1 }]",
            "connection.hosts",
        ),
        (
            "backend = \"sqlite\"\npath = \"/a.db\"\npassword = \"pw\"",
            "connection.password",
        ),
        (
            "backend = \"postgres\"\npath = \"/a.db\"",
            "connection.path",
        ),
        ("backend = \"postgres\"", "connection.hosts"),
    ] {
        let e = toml::from_str::<ConnectionConfig>(text).unwrap_err();
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
}

#[test]
fn options_are_read() {
    let o = SqliteOptions::from_config(&ConnectionConfig::sqlite("/a.db")).unwrap();
    assert_eq!(
        o,
        SqliteOptions {
            mode: OpenMode::Rwc,
            busy_timeout: Duration::from_secs(5),
            journal_mode: Some(JournalMode::Wal),
            foreign_keys: true,
        }
    );
    let c = ConnectionConfig::parse(
        "sqlite:///a.db?mode=rw&busy_timeout=1500&journal_mode=DELETE&foreign_keys=off",
    )
    .unwrap();
    let o = SqliteOptions::from_config(&c).unwrap();
    assert_eq!(o.mode, OpenMode::Rw);
    assert_eq!(o.busy_timeout, Duration::from_millis(1500));
    assert_eq!(o.journal_mode, Some(JournalMode::Delete));
    assert!(!o.foreign_keys);
    let ro = ConnectionConfig::parse("sqlite:///a.db?mode=ro").unwrap();
    assert_eq!(SqliteOptions::from_config(&ro).unwrap().journal_mode, None);
    let mem = ConnectionConfig::parse("sqlite::memory:?busy_timeout=0").unwrap();
    let o = SqliteOptions::from_config(&mem).unwrap();
    assert_eq!((o.journal_mode, o.busy_timeout), (None, Duration::ZERO));
}

#[test]
fn display_debug_and_url_print_the_path() {
    for url in [
        "sqlite:///abs/path.db",
        "sqlite://relative.db",
        "sqlite://data/my%20app.db",
        "sqlite::memory:",
    ] {
        let c = ConnectionConfig::parse(url).unwrap();
        assert_eq!(c.to_string(), url);
        assert_eq!(
            ConnectionConfig::parse(&c.to_url_with_password()).unwrap(),
            c
        );
    }
    let c = ConnectionConfig::parse("sqlite:///abs/path.db?busy_timeout=2s").unwrap();
    assert_eq!(
        c.to_url_with_password(),
        "sqlite:///abs/path.db?busy_timeout=2s"
    );
    assert!(format!("{c:?}").contains("/abs/path.db"), "{c:?}");
    assert_eq!(c.primary_host(), "/abs/path.db");
    assert_eq!(ConnectionConfig::sqlite(MEMORY).primary_host(), MEMORY);
    // A relative path that could read as a host is written so that it reads back as a path.
    let odd = ConnectionConfig::sqlite("a:b/c@d.db");
    assert_eq!(
        ConnectionConfig::parse(&odd.to_url_with_password()).unwrap(),
        odd
    );
}

#[test]
fn the_key_covers_the_canonical_path() {
    let cwd = std::env::current_dir().unwrap();
    let abs = format!("sqlite://{}/pw-key-test.db", cwd.display());
    let key = |url: &str| PoolKey::of(&ConnectionConfig::parse(url).unwrap());
    let k = key(&abs);
    assert_eq!(key("sqlite://pw-key-test.db"), k);
    assert_eq!(key("sqlite://./pw-key-test.db"), k);
    assert_eq!(key("sqlite:pw-key-test.db"), k);
    assert_eq!(key("sqlite://src/../pw-key-test.db"), k);
    assert_ne!(key("sqlite://other.db"), k);
    assert_ne!(key(&format!("{abs}?busy_timeout=1s")), k);
    // The directory need not exist: lexical then.
    assert_eq!(
        key("sqlite:///no/such/dir/../x.db"),
        key("sqlite:///no/such/x.db")
    );
    // Every `:memory:` config with the same options is one key.
    assert_eq!(key("sqlite::memory:"), key("sqlite://:memory:"));
    assert_ne!(
        key("sqlite::memory:"),
        key("sqlite::memory:?busy_timeout=1s")
    );
    assert_eq!(canonical_path(Path::new(MEMORY)), Path::new(MEMORY));
}

#[cfg(unix)]
#[test]
fn the_key_follows_symlinks_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let a = ConnectionConfig::sqlite(real.join("a.db"));
    let b = ConnectionConfig::sqlite(link.join("a.db"));
    assert_eq!(PoolKey::of(&a), PoolKey::of(&b));
}
