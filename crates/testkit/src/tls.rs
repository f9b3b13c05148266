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
        fs::create_dir_all(dir).unwrap();
        let openssl = |args: &[&str]| run(Command::new("/usr/bin/openssl").args(args).current_dir(dir));
        fs::write(
            dir.join("ca.cnf"),
            "[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        fs::write(
            dir.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509", "-new"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bpc-enroll test CA"]);
        ca.extend(["-extensions", "ca", "-config", "ca.cnf"]);
        openssl(&ca);
        let mut request = vec!["req", "-new"];
        request.extend(ec);
        request.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", "-config", "ca.cnf"]);
        openssl(&request);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        TestCa { ca: dir.join("ca.crt"), cert: dir.join("server.crt"), key: dir.join("server.key") }
    }
}
