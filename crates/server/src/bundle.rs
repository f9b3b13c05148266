//! `bpc-register bundle`: the site bundle an administrator hands out, so
//! that `bpc-enroll setup --user LOGON` is the whole enrollment.
//!
//! [`SiteFiles::new`] gathers what a machine needs: `client.toml` naming the
//! server and, for `ssh://`, the register key and a `known_hosts` pinning
//! the server's SSH host keys, or, for `https://`, the CA that signs the
//! server's certificate when the administrator gives one. [`write_bundle`]
//! puts them into a Debian package (built by `dpkg-deb`, every file
//! `root:root`, the key `0600`, all conffiles) that depends on
//! `bpc-enroll`, and into a `.tar.gz` of the same files with a short install
//! note, for machines without dpkg. An `ssh://` bundle carries the private
//! register key, so both are written `0600` (an `https://` one too, alike).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DPKG_DEB: &str = "/usr/bin/dpkg-deb";
const TAR: &str = "/bin/tar";
const GZIP: &str = "/bin/gzip";

/// Where the site files go on a machine.
pub const CLIENT_TOML: &str = "etc/bpc-enroll/client.toml";
/// The register key, in a folder of its own so that a BackupPC server that
/// enrolls itself keeps its own register key beside `server.toml`.
pub const SITE_KEY: &str = "etc/bpc-enroll/site/register_ed25519";
/// The server's pinned host keys.
pub const SITE_KNOWN_HOSTS: &str = "etc/bpc-enroll/site/known_hosts";
/// The CA that signs an `https://` server's certificate.
pub const SITE_CA: &str = "etc/bpc-enroll/site/ca.pem";

/// What `bundle` was asked for.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// `ssh://HOST[:PORT]` or `https://HOST[:PORT]`, the server the
    /// machines enroll with.
    pub server: String,
    /// For `https://`: a PEM file of the CA certificates that sign the
    /// server's certificate; without it, machines trust their system's CAs.
    pub ca_file: Option<PathBuf>,
    /// The register key (private).
    pub register_key: PathBuf,
    /// Public host key files; by default `/etc/ssh/ssh_host_*_key.pub`.
    pub host_keys: Vec<PathBuf>,
    /// The package's name.
    pub name: String,
    /// The package's version.
    pub version: String,
    /// The package's maintainer, `Name <address>`.
    pub maintainer: String,
}

/// Why no bundle was written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The server is not `ssh://HOST[:PORT]` or `https://HOST[:PORT]`.
    #[error(
        "--server `{0}` is not ssh://HOST[:PORT] or https://HOST[:PORT] (a DNS name or an address, a port from 1 \
         to 65535)"
    )]
    BadServer(String),
    /// A CA file for a server that is not `https://`.
    #[error("--ca-file is for an https:// server; an ssh:// server is pinned by its host keys (--host-key)")]
    CaFileWithoutHttps,
    /// The CA file cannot be used.
    #[error(
        "{path}: {reason}; give the PEM file of the CA that signs the certificate of `bpc-register serve` with \
         --ca-file"
    )]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A package name, version or maintainer Debian would refuse.
    #[error("{what} `{text}` is not {rule}")]
    BadField {
        /// `--name`, `--version` or `--maintainer`.
        what: &'static str,
        /// The text.
        text: String,
        /// What it must be.
        rule: &'static str,
    },
    /// The register key cannot be used.
    #[error("{path}: {reason}; run `bpc-register install` first, or give --register-key FILE")]
    RegisterKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A host key cannot be used.
    #[error(
        "{path}: not an OpenSSH public host key ({reason}); give the .pub files of the server's sshd with --host-key"
    )]
    HostKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No host key at all.
    #[error("no host key: no /etc/ssh/ssh_host_*_key.pub here; give the server's sshd keys with --host-key FILE")]
    NoHostKey,
    /// A file could not be written or a program failed.
    #[error("{what}: {reason}")]
    Build {
        /// What was being made.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl BundleError {
    /// The exit code: 2 for bad options, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            BundleError::BadServer(_) | BundleError::BadField { .. } | BundleError::CaFileWithoutHttps => 2,
            _ => 1,
        }
    }
}

/// The server as the machines reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshServer {
    /// A DNS name or an address (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl SshServer {
    /// Parses `ssh://HOST[:PORT]`.
    pub fn parse(url: &str) -> Result<SshServer, BundleError> {
        let (host, port) = host_and_port(url, "ssh", 22)?;
        Ok(SshServer { host, port })
    }

    /// The URL, as `client.toml` writes it.
    pub fn url(&self) -> String {
        url_of("ssh", &self.host, self.port, 22)
    }

    /// How ssh names this server in `known_hosts`.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 { self.host.clone() } else { format!("[{}]:{}", self.host, self.port) }
    }
}

/// The server the machines reach, by its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteServer {
    /// `ssh://HOST[:PORT]`: the register key and the pinned host keys.
    Ssh(SshServer),
    /// `https://HOST[:PORT]` (`bpc-register serve`): its certificate checked
    /// against the system's CAs or the bundle's CA.
    Https {
        /// A DNS name or an address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
}

impl SiteServer {
    /// Parses `ssh://HOST[:PORT]` or `https://HOST[:PORT]`.
    pub fn parse(url: &str) -> Result<SiteServer, BundleError> {
        if url.starts_with("https://") {
            let (host, port) = host_and_port(url, "https", 443)?;
            return Ok(SiteServer::Https { host, port });
        }
        SshServer::parse(url).map(SiteServer::Ssh)
    }

    /// The URL, as `client.toml` writes it.
    pub fn url(&self) -> String {
        match self {
            SiteServer::Ssh(server) => server.url(),
            SiteServer::Https { host, port } => url_of("https", host, *port, 443),
        }
    }

    /// The server's host.
    pub fn host(&self) -> &str {
        match self {
            SiteServer::Ssh(server) => &server.host,
            SiteServer::Https { host, .. } => host,
        }
    }
}

/// `SCHEME://HOST[:PORT]` read as a DNS name or an address and a port
/// (`default` when absent), nothing more.
fn host_and_port(url: &str, scheme: &str, default: u16) -> Result<(String, u16), BundleError> {
    let bad = || BundleError::BadServer(url.to_owned());
    let rest = url.strip_prefix(scheme).and_then(|rest| rest.strip_prefix("://")).ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (host, after.strip_prefix(':'))
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let port = match port {
        Some(port) => port.parse::<u16>().ok().filter(|port| *port > 0).ok_or_else(bad)?,
        None => default,
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        protocol::HostName::parse(host).map_err(|_| bad())?;
    }
    Ok((host.to_owned(), port))
}

/// `SCHEME://HOST[:PORT]`, the port left out when it is the scheme's own.
fn url_of(scheme: &str, host: &str, port: u16, default: u16) -> String {
    match (port == default, host.contains(':')) {
        (true, false) => format!("{scheme}://{host}"),
        (true, true) => format!("{scheme}://[{host}]"),
        (false, false) => format!("{scheme}://{host}:{port}"),
        (false, true) => format!("{scheme}://[{host}]:{port}"),
    }
}

/// The files a machine needs, as text (paths relative to `/`).
#[derive(Debug, Clone)]
pub struct SiteFiles {
    /// The server.
    pub server: SiteServer,
    /// `client.toml`.
    pub client_toml: String,
    /// The private register key (`ssh://`).
    pub register_key: Option<Vec<u8>>,
    /// The `known_hosts` lines (`ssh://`).
    pub known_hosts: Option<String>,
    /// The CA certificates, PEM (`https://`, when given).
    pub ca: Option<Vec<u8>>,
}

impl SiteFiles {
    /// Reads and checks what the server's transport needs: for `ssh://`
    /// the register key and the host keys, for `https://` the CA file if
    /// one is given.
    pub fn new(options: &BundleOptions) -> Result<SiteFiles, BundleError> {
        let server = SiteServer::parse(&options.server)?;
        let mut client_toml = format!(
            "# bpc-enroll's settings for this site, installed by the {} package: see client.toml(5).\n\
             server = \"{}\"\n",
            options.name,
            server.url()
        );
        let files = match &server {
            SiteServer::Ssh(ssh) => {
                if options.ca_file.is_some() {
                    return Err(BundleError::CaFileWithoutHttps);
                }
                let register_key = read_register_key(&options.register_key)?;
                let host_keys =
                    if options.host_keys.is_empty() { default_host_keys()? } else { options.host_keys.clone() };
                let mut known_hosts = String::new();
                for path in &host_keys {
                    let key = host_key(path)?;
                    known_hosts.push_str(&format!("{} {key}\n", ssh.known_hosts_name()));
                }
                client_toml.push_str("register-key = \"site/register_ed25519\"\nknown-hosts = \"site/known_hosts\"\n");
                SiteFiles {
                    server,
                    client_toml,
                    register_key: Some(register_key),
                    known_hosts: Some(known_hosts),
                    ca: None,
                }
            }
            SiteServer::Https { .. } => {
                let ca = options.ca_file.as_deref().map(read_ca_file).transpose()?;
                if ca.is_some() {
                    client_toml.push_str("ca-file = \"site/ca.pem\"\n");
                }
                SiteFiles { server, client_toml, register_key: None, known_hosts: None, ca }
            }
        };
        Ok(files)
    }

    /// The files below `/`, in the order they are packed, with their modes.
    fn laid_out(&self) -> Vec<(&'static str, &[u8], u32)> {
        let mut files = vec![(CLIENT_TOML, self.client_toml.as_bytes(), 0o644)];
        if let Some(key) = &self.register_key {
            files.push((SITE_KEY, key.as_slice(), 0o600));
        }
        if let Some(known_hosts) = &self.known_hosts {
            files.push((SITE_KNOWN_HOSTS, known_hosts.as_bytes(), 0o644));
        }
        if let Some(ca) = &self.ca {
            files.push((SITE_CA, ca.as_slice(), 0o644));
        }
        files
    }

    /// What the files let a machine do, for the package's description.
    fn what(&self) -> &'static str {
        match (&self.server, &self.ca) {
            (SiteServer::Ssh(_), _) => {
                "with the key that lets a machine register there and the server's SSH\n \
                 host keys"
            }
            (SiteServer::Https { .. }, Some(_)) => "with the CA that signs the server's HTTPS certificate",
            (SiteServer::Https { .. }, None) => "whose HTTPS certificate the system's CAs vouch for",
        }
    }
}

/// The two files written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The Debian package.
    pub deb: PathBuf,
    /// The tarball.
    pub tarball: PathBuf,
}

/// Builds the package at `deb` and the tarball beside it (`.tar.gz` in
/// place of `.deb`), both `0600`, each replacing any file there whole.
pub fn write_bundle(options: &BundleOptions, files: &SiteFiles, deb: &Path) -> Result<Written, BundleError> {
    check_fields(options)?;
    let tarball = tarball_beside(deb);
    let work =
        tempfile::Builder::new().prefix("bpc-register-bundle-").tempdir().map_err(|e| build("a work folder", e))?;

    let root = work.path().join("package");
    lay_out(&root, files)?;
    write(&root.join("DEBIAN/control"), control(options, files).as_bytes(), 0o644)?;
    let conffiles: String = files.laid_out().iter().map(|(path, _, _)| format!("/{path}\n")).collect();
    write(&root.join("DEBIAN/conffiles"), conffiles.as_bytes(), 0o644)?;
    let doc = root.join(format!("usr/share/doc/{}", options.name));
    write(&doc.join("copyright"), copyright(options, files).as_bytes(), 0o644)?;
    // A native package (its version has no Debian revision): changelog.gz.
    write(&doc.join("changelog.gz"), &gzip(changelog(options, files).as_bytes())?, 0o644)?;
    if files.register_key.is_some() {
        let overrides = format!(
            "# The register key is a private key: root's alone.\n\
             {name}: non-standard-file-perm 0600 != 0644 [{SITE_KEY}]\n",
            name = options.name
        );
        write(&root.join(format!("usr/share/lintian/overrides/{}", options.name)), overrides.as_bytes(), 0o644)?;
    }
    open_folders(&root)?;
    let built = work.path().join("built.deb");
    run(
        Command::new(DPKG_DEB).args(["--build", "--root-owner-group", "-Zxz"]).arg(&root).arg(&built),
        "dpkg-deb --build",
    )?;

    let folder = work.path().join("tarball");
    let top = folder.join(&options.name);
    lay_out(&top, files)?;
    write(&top.join("INSTALL"), install_note(options, files, deb, &tarball).as_bytes(), 0o644)?;
    open_folders(&top)?;
    let built_tarball = work.path().join("built.tar.gz");
    let laid_out = files.laid_out();
    let site_folder = (laid_out.len() > 1).then_some("etc/bpc-enroll/site");
    let members = ["INSTALL", CLIENT_TOML]
        .into_iter()
        .chain(site_folder)
        .chain(laid_out.iter().skip(1).map(|(path, _, _)| *path))
        .map(|member| format!("{}/{member}", options.name));
    run(
        Command::new(TAR)
            .args(["--create", "--gzip", "--no-recursion", "--owner=0", "--group=0", "--numeric-owner", "--file"])
            .arg(&built_tarball)
            .arg("--directory")
            .arg(&folder)
            .args(members),
        "tar --create",
    )?;

    publish(&built, deb)?;
    publish(&built_tarball, &tarball)?;
    Ok(Written { deb: deb.to_owned(), tarball })
}

/// The tarball's path: the package's, `.tar.gz` in place of `.deb`.
pub fn tarball_beside(deb: &Path) -> PathBuf {
    let text = deb.as_os_str().to_string_lossy();
    PathBuf::from(format!("{}.tar.gz", text.strip_suffix(".deb").unwrap_or(&text)))
}

/// The default package file name: `NAME_VERSION_all.deb`.
pub fn default_file_name(options: &BundleOptions) -> String {
    format!("{}_{}_all.deb", options.name, options.version)
}

/// A version that grows with time, so that a new bundle upgrades an old one.
pub fn default_version(now: std::time::SystemTime) -> String {
    let seconds = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_date(seconds / 86_400);
    let minute_of_day = seconds % 86_400 / 60;
    format!("{year}.{month:02}.{day:02}.{:02}{:02}", minute_of_day / 60, minute_of_day % 60)
}

fn check_fields(options: &BundleOptions) -> Result<(), BundleError> {
    let name_ok = options.name.len() >= 2
        && options.name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && options.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !name_ok {
        return Err(BundleError::BadField {
            what: "--name",
            text: options.name.clone(),
            rule: "a Debian package name (lowercase letters, digits, + - and ., two or more)",
        });
    }
    let version_ok = options.version.starts_with(|c: char| c.is_ascii_digit())
        && options.version.chars().all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c));
    if !version_ok {
        return Err(BundleError::BadField {
            what: "--version",
            text: options.version.clone(),
            rule: "a Debian version starting with a digit (letters, digits, . + and ~)",
        });
    }
    let maintainer_ok = options
        .maintainer
        .strip_suffix('>')
        .and_then(|rest| rest.split_once(" <"))
        .is_some_and(|(name, address)| !name.trim().is_empty() && address.contains('@'))
        && !options.maintainer.chars().any(char::is_control);
    if !maintainer_ok {
        return Err(BundleError::BadField {
            what: "--maintainer",
            text: options.maintainer.clone(),
            rule: "`Name <address>`",
        });
    }
    Ok(())
}

fn read_register_key(path: &Path) -> Result<Vec<u8>, BundleError> {
    let fail = |reason: String| BundleError::RegisterKey { path: path.to_owned(), reason };
    let bytes = fs::read(path).map_err(|error| fail(format!("cannot read the register key: {error}")))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| fail("not an OpenSSH private key".into()))?;
    let key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|error| fail(format!("not an OpenSSH private key: {error}")))?;
    if key.is_encrypted() {
        return Err(fail("the key has a passphrase, which setup could not type".into()));
    }
    Ok(bytes)
}

fn default_host_keys() -> Result<Vec<PathBuf>, BundleError> {
    let mut keys: Vec<PathBuf> = fs::read_dir("/etc/ssh")
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        .unwrap_or_default();
    keys.retain(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("ssh_host_") && name.ends_with("_key.pub"))
    });
    keys.sort();
    if keys.is_empty() { Err(BundleError::NoHostKey) } else { Ok(keys) }
}

/// One host public key, as `TYPE BASE64` (its comment dropped).
fn host_key(path: &Path) -> Result<String, BundleError> {
    let fail = |reason: String| BundleError::HostKey { path: path.to_owned(), reason };
    let text = fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
    let mut key = ssh_key::PublicKey::from_openssh(text.trim()).map_err(|error| fail(error.to_string()))?;
    key.set_comment("");
    Ok(key.to_openssh().map_err(|error| fail(error.to_string()))?.trim().to_owned())
}

/// The files under `root`, with their modes (all root's once packed).
fn lay_out(root: &Path, files: &SiteFiles) -> Result<(), BundleError> {
    for (path, body, mode) in files.laid_out() {
        write(&root.join(path), body, mode)?;
    }
    Ok(())
}

/// The CA file, checked to hold PEM certificates that can be CAs, as the
/// client reads it.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, BundleError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail = |reason: String| BundleError::CaFile { path: path.to_owned(), reason };
    let bytes = fs::read(path).map_err(|error| fail(format!("cannot read the CA certificates: {error}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| fail(format!("not a PEM file of CA certificates: {error}")))?;
    if certs.is_empty() {
        return Err(fail("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    let (_, unusable) = rustls::RootCertStore::empty().add_parsable_certificates(certs);
    if unusable > 0 {
        return Err(fail(format!("{unusable} of its certificates cannot be used as a CA")));
    }
    Ok(bytes)
}

fn control(options: &BundleOptions, files: &SiteFiles) -> String {
    format!(
        "Package: {}\n\
         Version: {}\n\
         Architecture: all\n\
         Maintainer: {}\n\
         Depends: bpc-enroll\n\
         Section: admin\n\
         Priority: optional\n\
         Description: bpc-enroll settings for the BackupPC server {}\n \
         Installs /etc/bpc-enroll/client.toml, which names the server\n \
         {},\n \
         {},\n \
         so that `bpc-enroll setup --user LOGON` enrolls the machine.\n",
        options.name,
        options.version,
        options.maintainer,
        files.server.host(),
        files.server.url(),
        files.what()
    )
}

fn copyright(options: &BundleOptions, files: &SiteFiles) -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {name}\n\
         Comment: The settings of one site, made by `bpc-register bundle` for\n \
         {url}: {what}, for bpc-enroll.\n\n\
         Files: *\n\
         Copyright: {year} {maintainer}\n\
         License: GPL-3+\n \
         On Debian systems, the complete text of the GNU General Public License\n \
         version 3 can be found in /usr/share/common-licenses/GPL-3.\n",
        name = options.name,
        url = files.server.url(),
        what = match (&files.server, &files.ca) {
            (SiteServer::Ssh(_), _) => "a configuration file, an SSH key and the server's public\n host keys",
            (SiteServer::Https { .. }, Some(_)) => "a configuration file and the server's CA certificate",
            (SiteServer::Https { .. }, None) => "a configuration file",
        },
        maintainer = options.maintainer,
        year = civil_date(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400
        )
        .0
    )
}

fn changelog(options: &BundleOptions, files: &SiteFiles) -> String {
    let now = std::time::SystemTime::now();
    format!(
        "{} ({}) unstable; urgency=medium\n\n  * Settings for {}, made by bpc-register bundle.\n\n -- {}  {}\n",
        options.name,
        options.version,
        files.server.url(),
        options.maintainer,
        rfc2822(now)
    )
}

fn install_note(options: &BundleOptions, files: &SiteFiles, deb: &Path, tarball: &Path) -> String {
    let deb = deb.file_name().map_or_else(|| deb.display().to_string(), |name| name.to_string_lossy().into_owned());
    let tarball =
        tarball.file_name().map_or_else(|| tarball.display().to_string(), |name| name.to_string_lossy().into_owned());
    let files_say = match (&files.server, &files.ca) {
        (SiteServer::Ssh(_), _) => {
            "client.toml names\n\
             the server, site/register_ed25519 is the key that may register (keep it root's,\n\
             mode 0600) and site/known_hosts pins the server's SSH host keys."
        }
        (SiteServer::Https { .. }, Some(_)) => {
            "client.toml names\n\
             the server and site/ca.pem is the CA its HTTPS certificate must be signed by."
        }
        (SiteServer::Https { .. }, None) => {
            "client.toml names\n\
             the server, whose HTTPS certificate the system's CAs must vouch for."
        }
    };
    format!(
        "Enrolling a machine with the BackupPC server {url}\n\n\
         These files let `bpc-enroll setup` register a machine there: {files_say}\n\n\
         With dpkg (Debian, Ubuntu), as root:\n\n    \
         apt-get install ./{deb} && bpc-enroll setup --user LOGON\n\n\
         Elsewhere, as root, once bpc-enroll is installed:\n\n    \
         tar -xzf {tarball} -C / --strip-components=1 {name}/etc\n    \
         bpc-enroll setup --user LOGON\n\n\
         LOGON is the directory login the machine is registered to.\n",
        url = files.server.url(),
        name = options.name,
    )
}

fn write(path: &Path, body: &[u8], mode: u32) -> Result<(), BundleError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|error| build(&parent.display().to_string(), error))?;
    }
    files::write_atomic(path, body, mode).map_err(|error| build(&path.display().to_string(), error))
}

/// Gives every folder below `root` mode 0755, as packages have them,
/// whatever the umask made.
fn open_folders(root: &Path) -> Result<(), BundleError> {
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))
        .map_err(|error| build(&root.display().to_string(), error))?;
    for entry in fs::read_dir(root).map_err(|error| build(&root.display().to_string(), error))? {
        let path = entry.map_err(|error| build(&root.display().to_string(), error))?.path();
        if fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
            open_folders(&path)?;
        }
    }
    Ok(())
}

fn publish(built: &Path, out: &Path) -> Result<(), BundleError> {
    let bytes = fs::read(built).map_err(|error| build(&built.display().to_string(), error))?;
    files::write_atomic(out, &bytes, 0o600).map_err(|error| build(&out.display().to_string(), error))?;
    // A file that was there keeps its mode in an atomic write: the bundle
    // holds a private key, so it is made 0600 whatever was there before.
    fs::set_permissions(out, fs::Permissions::from_mode(0o600))
        .map_err(|error| build(&out.display().to_string(), error))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    use std::io::Write;
    let mut child = Command::new(GZIP)
        .args(["-9", "-n", "-c"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| build(GZIP, error))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(bytes).map_err(|error| build(GZIP, error))?;
    }
    let output = child.wait_with_output().map_err(|error| build(GZIP, error))?;
    if !output.status.success() {
        return Err(build(GZIP, String::from_utf8_lossy(&output.stderr)));
    }
    Ok(output.stdout)
}

fn run(command: &mut Command, what: &str) -> Result<(), BundleError> {
    let output = command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| build(what, error))?;
    if !output.status.success() {
        return Err(build(what, protocol::text::one_line(&String::from_utf8_lossy(&output.stderr))));
    }
    Ok(())
}

fn build(what: &str, reason: impl std::fmt::Display) -> BundleError {
    BundleError::Build { what: what.to_owned(), reason: reason.to_string() }
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's civil_from_days, for days after the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A date as Debian's changelog writes it: `Tue, 02 Dec 2025 19:30:00 +0000`.
fn rfc2822(now: std::time::SystemTime) -> String {
    let seconds = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = seconds / 86_400;
    let (year, month, day) = civil_date(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"].get((days % 7) as usize).copied().unwrap_or("Thu");
    let month_name = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .get((month - 1) as usize)
        .copied()
        .unwrap_or("Jan");
    let second_of_day = seconds % 86_400;
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn servers_are_ssh_urls_with_a_name_or_an_address_and_a_port() {
        let parse = |url: &str| SshServer::parse(url).map(|server| (server.url(), server.known_hosts_name()));
        assert_eq!(
            parse("ssh://backup.example.org").unwrap(),
            ("ssh://backup.example.org".into(), "backup.example.org".into())
        );
        assert_eq!(parse("ssh://127.0.0.1:2222").unwrap(), ("ssh://127.0.0.1:2222".into(), "[127.0.0.1]:2222".into()));
        assert_eq!(parse("ssh://[::1]:2222/").unwrap(), ("ssh://[::1]:2222".into(), "[::1]:2222".into()));
        assert_eq!(parse("ssh://Backup.Example.org:22").unwrap().0, "ssh://Backup.Example.org");
        let site = |url: &str| SiteServer::parse(url).map(|server| (server.url(), server.host().to_owned()));
        assert_eq!(
            site("https://backup.example.org").unwrap(),
            ("https://backup.example.org".into(), "backup.example.org".into())
        );
        assert_eq!(site("https://127.0.0.1:8443/").unwrap(), ("https://127.0.0.1:8443".into(), "127.0.0.1".into()));
        assert_eq!(site("https://[::1]:443").unwrap(), ("https://[::1]".into(), "::1".into()));
        assert_eq!(site("ssh://backup:2222").unwrap(), ("ssh://backup:2222".into(), "backup".into()));
        for bad in [
            "http://backup",
            "https://",
            "https://user@backup",
            "https://backup/register",
            "httpsx://backup",
            "ssh://",
            "ssh://a b",
            "ssh://host:0",
            "ssh://host:x",
            "ssh://[nope]:22",
            "ssh://user@host",
            "ssh://host\";x",
        ] {
            let error = SiteServer::parse(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "--server `{bad}` is not ssh://HOST[:PORT] or https://HOST[:PORT] (a DNS name or an address, a \
                     port from 1 to 65535)"
                )
            );
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn the_tarball_is_named_after_the_package() {
        assert_eq!(tarball_beside(Path::new("out/site.deb")), Path::new("out/site.tar.gz"));
        assert_eq!(
            tarball_beside(Path::new("bpc-enroll-site_2025.12.02.1930_all.deb")),
            Path::new("bpc-enroll-site_2025.12.02.1930_all.tar.gz")
        );
        assert_eq!(tarball_beside(Path::new("bundle")), Path::new("bundle.tar.gz"));
    }

    #[test]
    fn versions_grow_with_time_and_dates_read_as_debian_writes_them() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_703_802);
        assert_eq!(default_version(at), "2025.12.02.1930");
        assert_eq!(rfc2822(at), "Tue, 02 Dec 2025 19:30:02 +0000");
        assert_eq!(rfc2822(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn names_versions_and_maintainers_debian_refuses_are_refused() {
        let options = BundleOptions {
            server: "ssh://backup.example.org".into(),
            ca_file: None,
            register_key: PathBuf::new(),
            host_keys: Vec::new(),
            name: "bpc-enroll-site".into(),
            version: "2025.12.02.1930".into(),
            maintainer: "Backup administrators <backup@example.org>".into(),
        };
        assert!(check_fields(&options).is_ok());
        for (name, version, maintainer, message) in [
            (
                "Site",
                "1",
                "A <a@b>",
                "--name `Site` is not a Debian package name (lowercase letters, digits, + - and ., two or more)",
            ),
            (
                "site",
                "v1",
                "A <a@b>",
                "--version `v1` is not a Debian version starting with a digit (letters, digits, . + and ~)",
            ),
            ("site", "1", "root", "--maintainer `root` is not `Name <address>`"),
            ("site", "1", "A <a@b>\nX: y", "--maintainer `A <a@b>\nX: y` is not `Name <address>`"),
        ] {
            let options = BundleOptions {
                name: name.into(),
                version: version.into(),
                maintainer: maintainer.into(),
                ..options.clone()
            };
            assert_eq!(check_fields(&options).unwrap_err().to_string(), message);
        }
    }
}
