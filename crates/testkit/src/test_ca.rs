//! Test certificate authorities made with the `openssl` program: a CA, and
//! server certificates it signs for names and addresses on this machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// A certificate authority in a test folder.
pub struct TestCa {
    /// The CA's certificate (PEM): what a client's `ca-file` names.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// A server certificate and its private key, both PEM.
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its files are `dir/NAME-ca.crt` and `.key`).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join("ca.cnf"),
            "[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\n\
             keyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        let cert = dir.join(format!("{name}-ca.crt"));
        let key = dir.join(format!("{name}-ca.key"));
        let subject = format!("/CN=bpc-enroll test CA {name}");
        run(openssl(dir, &["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "2", "-extensions", "ca", "-config", "ca.cnf", "-subj", &subject])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        TestCa { cert, key, dir: dir.to_owned() }
    }

    /// A server certificate named `name`, signed by this CA, valid for
    /// `alt_names` (`DNS:localhost`, `IP:127.0.0.1`).
    pub fn issue(&self, name: &str, alt_names: &[&str]) -> Issued {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.crt"));
        let ext = self.dir.join(format!("{name}.ext"));
        fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                alt_names.join(",")
            ),
        )
        .unwrap();
        run(openssl(&self.dir, &["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-config", "ca.cnf", "-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        run(openssl(&self.dir, &["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&self.cert)
            .arg("-CAkey")
            .arg(&self.key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        Issued { cert, key }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("/usr/bin/openssl");
    command.args(args).current_dir(dir).stdin(std::process::Stdio::null());
    command
}
