//! A config's identity: what the pool key covers (everything that changes what a
//! connection is) and never the password. For SQLite that is the canonical path of the
//! database file, which costs a `realpath` of its directory per key.

use sha2::{Digest, Sha256};

use super::ConnectionConfig;
use crate::key::PoolKey;

impl PoolKey {
    /// The key of `config`.
    pub fn of(config: &ConnectionConfig) -> Self {
        let mut h = Sha256::new();
        let mut field = |tag: &str, value: &[u8]| {
            // Tag, then length-prefixed value: no two configs encode alike.
            h.update(tag.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        };
        let opt = |v: &Option<String>| v.as_deref().unwrap_or("\u{0}none").as_bytes().to_vec();
        let path = |v: &Option<std::path::PathBuf>| {
            v.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "\u{0}none".into())
                .into_bytes()
        };
        field("poolwarden/key/v1", b"");
        field("backend", config.backend.as_bytes());
        for host in &config.hosts {
            // Host names are case-insensitive (`DB1` is `db1`: one server, one pool); a
            // Unix socket directory is a path, whose case matters.
            if host.is_unix_socket() {
                field("host", host.host.as_bytes());
            } else {
                field("host", host.host.to_ascii_lowercase().as_bytes());
            }
            field("port", &host.port.to_le_bytes());
        }
        field("database", &opt(&config.database));
        field("user", &opt(&config.user));
        let mode = serde_plain_mode(config);
        field("tls.mode", mode.as_bytes());
        field("tls.ca_file", &path(&config.tls.ca_file));
        field("tls.client_cert", &path(&config.tls.client_cert));
        field("tls.client_key", &path(&config.tls.client_key));
        field("application_name", &opt(&config.application_name));
        for (k, v) in &config.options {
            field("option.key", k.as_bytes());
            field("option.value", v.as_bytes());
        }
        // Only SQLite configs have a path (so the keys of the others are unchanged): the
        // canonical one, so that every spelling of one file is one pool. `:memory:` keys as
        // itself.
        if let Some(p) = &config.path {
            let canonical = super::sqlite::canonical_path(p);
            field("path", canonical.to_string_lossy().as_bytes());
        }
        Self::from_digest(h.finalize().into())
    }
}

fn serde_plain_mode(config: &ConnectionConfig) -> &'static str {
    use super::SslMode::*;
    match config.tls.mode {
        Disable => "disable",
        Prefer => "prefer",
        Require => "require",
        VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn pinned_vector_is_stable() {
        // If this changes, every deployed key changes: bump the version tag instead.
        // The digest was computed independently (Python hashlib) from the documented
        // encoding: per field, tag bytes, u64-LE length, value; absent values as "\\0none".
        let c = ConnectionConfig::parse(
            "postgres://app@db.internal:5432/orders?sslmode=require&application_name=api",
        )
        .unwrap();
        assert_eq!(
            PoolKey::of(&c).to_hex(),
            "518afe55fcf48855a3baefcd544bcfdd3a63bf8dd2a1b410f0f1cbe5f6e08d3d"
        );
    }

    #[test]
    fn every_identity_field_changes_the_key() {
        let base = ConnectionConfig::parse("postgres://app@db:5432/orders").unwrap();
        let k = PoolKey::of(&base);
        let variants: Vec<fn(&mut ConnectionConfig)> = vec![
            |c| c.backend = "mysql".into(),
            |c| c.hosts[0].host = "db2".into(),
            |c| c.hosts[0].port = 5433,
            |c| c.database = Some("other".into()),
            |c| c.database = None,
            |c| c.user = Some("admin".into()),
            |c| c.tls.mode = crate::SslMode::VerifyFull,
            |c| c.tls.ca_file = Some("/ca.pem".into()),
            |c| c.application_name = Some("x".into()),
            |c| {
                c.options.insert("statement_timeout".into(), "1s".into());
            },
        ];
        for v in variants {
            let mut c = base.clone();
            v(&mut c);
            assert_ne!(PoolKey::of(&c), k, "{c:?}");
        }
        let mut c = base.clone();
        c.password = Some(Secret::new("anything"));
        assert_eq!(PoolKey::of(&c), k);
    }

    #[test]
    fn display_is_short_hex_and_never_the_password() {
        let c = ConnectionConfig::parse("postgres://app:hunter2@db/orders").unwrap();
        let k = PoolKey::of(&c);
        assert_eq!(k.to_string().len(), 12);
        assert!(k.to_hex().starts_with(&k.to_string()));
        assert!(!format!("{k:?}").contains("hunter2"));
    }
}
