//! Certificates for TLS tests, generated with rcgen: a throwaway CA that issues server and
//! client certificates, written to PEM files in a temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, as PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM, PKCS#8).
    pub key_pem: String,
}

/// The files a TLS test needs, in the CA's directory: the CA certificate, a server
/// certificate and key, a client certificate and key (PEM). The directory and files are
/// world-readable, so servers running as another user (PostgreSQL as `postgres`) can read
/// them too; they hold throwaway test keys only.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca_file: PathBuf,
    /// The server certificate (for the names it was issued for).
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// A client certificate issued by the same CA.
    pub client_cert: PathBuf,
    /// The client certificate's private key (PKCS#8, ECDSA P-256).
    pub client_key: PathBuf,
}

/// A throwaway certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA whose common name is `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            cert,
            key,
            dir: tempfile::Builder::new()
                .prefix("pw-ca-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate written to `<tmp>/ca.pem` (for `sslrootcert` / `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.write("ca.pem", &self.cert_pem())
    }

    /// A server certificate for `names` (DNS names or IP addresses, e.g.
    /// `["127.0.0.1", "localhost"]`).
    pub fn server_cert(&self, names: &[&str]) -> Issued {
        self.issue(names, names.first().copied().unwrap_or("server"), false)
    }

    /// A client certificate whose common name is `cn` (PostgreSQL maps it to the user).
    pub fn client_cert(&self, cn: &str) -> Issued {
        self.issue(&[], cn, true)
    }

    fn issue(&self, names: &[&str], cn: &str, client: bool) -> Issued {
        let key = KeyPair::generate().expect("generate key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Write `contents` to `<tmp>/name` (deleted with the CA); returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write PEM file");
        let readable = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&path, readable).expect("chmod PEM file");
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the CA directory");
        path
    }

    /// Write the CA certificate, a server certificate for `names` (e.g. `["127.0.0.1",
    /// "localhost"]`) and a client certificate whose common name is `client_cn`, each under
    /// `<prefix>-…` names (so one CA can issue several sets).
    pub fn files(&self, prefix: &str, names: &[&str], client_cn: &str) -> TlsFiles {
        let server = self.server_cert(names);
        let client = self.client_cert(client_cn);
        TlsFiles {
            ca_file: self.write(&format!("{prefix}-ca.pem"), &self.cert_pem()),
            cert_file: self.write(&format!("{prefix}-server.crt"), &server.cert_pem),
            key_file: self.write(&format!("{prefix}-server.key"), &server.key_pem),
            client_cert: self.write(&format!("{prefix}-client.crt"), &client.cert_pem),
            client_key: self.write(&format!("{prefix}-client.key"), &client.key_pem),
        }
    }

    /// The temporary directory holding written files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
