//! OpenSSH for the end-to-end tests: an sshd on 127.0.0.1 with its own host
//! key and configuration, and keys made by ssh-keygen.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::{free_port, run};

/// A new ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path, comment: &str) -> String {
    run(Command::new("/usr/bin/ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path));
    fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_owned()
}

/// An sshd on 127.0.0.1 with its own host key and configuration.
pub struct Sshd {
    daemon: Option<crate::Daemon>,
    dir: std::path::PathBuf,
    /// Its port.
    pub port: u16,
    /// Its host public key, as `known_hosts` wants it after the host pattern.
    pub host_key: String,
}

impl Sshd {
    /// Starts sshd in `dir` with `extra` configuration lines and waits until
    /// it says it is listening.
    pub fn start(dir: &Path, extra: &str) -> Sshd {
        fs::create_dir_all(dir).unwrap();
        let host_key = keygen(&dir.join("host_ed25519"), "test-host");
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {dir}/host_ed25519\n\
                 PidFile none\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 StrictModes yes\n\
                 LogLevel VERBOSE\n\
                 {extra}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let daemon = Some(Self::spawn(dir));
        let host_key = host_key.rsplit_once(' ').map_or(host_key.clone(), |(key, _)| key.to_owned());
        Sshd { daemon, dir: dir.to_owned(), port, host_key }
    }

    fn spawn(dir: &Path) -> crate::Daemon {
        fs::create_dir_all("/run/sshd").unwrap();
        let mut command = Command::new("/usr/sbin/sshd");
        command.args(["-D", "-e", "-f"]).arg(dir.join("sshd_config"));
        crate::Daemon::start(command, "Server listening on", dir.join("sshd.log"))
    }

    /// The file of its host public key.
    pub fn host_key_path(&self) -> std::path::PathBuf {
        self.dir.join("host_ed25519.pub")
    }

    /// Gives sshd a new host key (as a reinstalled machine has): stops it,
    /// makes the key and starts it again on the same port.
    pub fn replace_host_key(&mut self) {
        drop(self.daemon.take());
        fs::remove_file(self.dir.join("host_ed25519")).unwrap();
        fs::remove_file(self.host_key_path()).unwrap();
        let host_key = keygen(&self.dir.join("host_ed25519"), "test-host");
        self.host_key = host_key.rsplit_once(' ').map_or(host_key.clone(), |(key, _)| key.to_owned());
        self.daemon = Some(Self::spawn(&self.dir));
    }

    /// The `known_hosts` line that pins this sshd.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_key)
    }

    /// Where sshd logs.
    pub fn log_path(&self) -> &Path {
        &self.daemon.as_ref().unwrap().log
    }
}
