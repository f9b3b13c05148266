//! A test CA and a server certificate it signed, made with the `openssl`
//! command, for the TLS servers of the tests (slapd, `bpc-register serve`).

use crate::run;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate it signed, for `localhost`, 127.0.0.1 and ::1.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA's certificate (what a client trusts: its `ca-file`).
    pub ca: PathBuf,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TestCa {
    /// Makes the CA and the server's certificate in `dir` (created).
    pub fn new(dir: &Path) -> TestCa {
        TestCa::named(dir, "bpc-enroll test CA")
    }

    /// As [`TestCa::new`], the CA's subject `CN=NAME`: two CAs of one
    /// name differ only by their keys.
    pub fn named(dir: &Path, name: &str) -> TestCa {
        fs::create_dir_all(dir).unwrap();
        let openssl = |args: &[&str]| run(Command::new("/usr/bin/openssl").args(args).current_dir(dir));
        fs::write(
            dir.join("ca.cnf"),
            "[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509", "-new"];
        ca.extend(ec);
        let subject = format!("/CN={name}");
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", &subject]);
        ca.extend(["-extensions", "ca", "-config", "ca.cnf"]);
        openssl(&ca);
        let ca = TestCa { ca: dir.join("ca.crt"), cert: dir.join("server.crt"), key: dir.join("server.key") };
        ca.issue("server", &["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);
        ca
    }

    /// Another server certificate signed by this CA, valid for `alt_names`
    /// (`DNS:NAME`, `IP:ADDRESS`): `NAME.crt` and `NAME.key` beside the
    /// CA's, returned in that order.
    pub fn issue(&self, name: &str, alt_names: &[&str]) -> (PathBuf, PathBuf) {
        let dir = self.ca.parent().unwrap();
        let openssl = |args: &[&str]| run(Command::new("/usr/bin/openssl").args(args).current_dir(dir));
        let ext = format!("{name}.ext");
        fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                alt_names.join(",")
            ),
        )
        .unwrap();
        let (key, csr, cert) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        let mut request = vec!["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        request.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost", "-config", "ca.cnf"]);
        openssl(&request);
        openssl(
            &["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
                .into_iter()
                .chain(["-extfile", &ext, "-out", &cert])
                .collect::<Vec<_>>(),
        );
        (dir.join(cert), dir.join(key))
    }
}
