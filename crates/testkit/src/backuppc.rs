//! Debian's BackupPC 4, unchanged, run with its configuration in a test folder.
//!
//! BackupPC's scripts hard-code `/etc/backuppc/config.pl`; everything else
//! follows the `TopDir`, `ConfDir`, `LogDir` and `RunDir` that file sets. A
//! small preloaded Perl module (through `PERL5OPT`, which the daemon passes on
//! to every job) points the storage layer at the test's `config.pl` instead.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/share/backuppc/bin";

/// Preloaded before any BackupPC script: the storage layer takes its
/// `ConfDir` from `BPC_CONFDIR`.
const RELOCATE_PM: &str = r#"package BpcTestRelocate;
use strict;
use lib "/usr/share/backuppc/lib";
use BackupPC::Storage::Text;
my $conf_dir = $ENV{BPC_CONFDIR};
if ( defined($conf_dir) && $conf_dir ne "" ) {
    no warnings 'redefine';
    my $new = \&BackupPC::Storage::Text::new;
    *BackupPC::Storage::Text::new = sub {
        my($class, $fields, $paths, @rest) = @_;
        $paths->{ConfDir} = $conf_dir;
        return $new->($class, $fields, $paths, @rest);
    };
}
1;
"#;

/// Prints `host<TAB>user` for each host `BackupPC::Lib`'s `HostInfoRead`
/// keeps, sorted.
const HOST_INFO_READ: &str = r#"
use strict;
use lib "/usr/share/backuppc/lib";
use BackupPC::Lib;
my $bpc = BackupPC::Lib->new(undef, undef, undef, 1) or die "BackupPC::Lib cannot start\n";
my $hosts = $bpc->HostInfoRead();
foreach my $host (sort keys %$hosts) {
    my $user = $hosts->{$host}{user};
    print $host, "\t", (defined $user ? $user : "(none)"), "\n";
}
"#;

/// Reads `CONFDIR/hosts` with BackupPC's storage module (`HostInfoRead` of
/// `BackupPC::Storage::Text`, the code under `BackupPC::Lib`'s) and prints
/// `host<TAB>user` for each host it keeps, sorted.
const STORAGE_HOST_INFO_READ: &str = r#"
use strict;
use lib "/usr/share/backuppc/lib";
use BackupPC::Storage::Text;
my $s = BackupPC::Storage::Text->new({}, { ConfDir => shift });
my $hosts = $s->HostInfoRead();
foreach my $host (sort keys %$hosts) {
    my $user = $hosts->{$host}{user};
    print $host, "\t", (defined $user ? $user : "(none)"), "\n";
}
"#;

/// The `hosts` file in `conf_dir` as BackupPC's own code reads it, run by
/// this process (no installation needed beyond Debian's Perl modules):
/// host → owner (`(none)` when the line has none).
pub fn hosts_in(conf_dir: &Path) -> BTreeMap<String, String> {
    let output =
        Command::new("/usr/bin/perl").env_clear().arg("-e").arg(STORAGE_HOST_INFO_READ).arg(conf_dir).output().unwrap();
    assert!(output.status.success(), "HostInfoRead failed: {}", String::from_utf8_lossy(&output.stderr));
    host_owner_lines(&output.stdout)
}

/// `host<TAB>user` lines as a map.
fn host_owner_lines(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let (host, user) = line.split_once('\t').unwrap();
            (host.to_owned(), user.to_owned())
        })
        .collect()
}

/// The fields a browser sends when it submits the form named `form_name`
/// of `page`, in page order: every named `<input>` but buttons, checkboxes
/// and radio buttons only when checked, and `<textarea>`s; values with
/// their HTML entities decoded. A `<select>` inside the form fails the test
/// (its choice is not read here).
pub fn form_fields(page: &str, form_name: &str) -> Vec<(String, String)> {
    let start = page.find(&format!("name=\"{form_name}\"")).unwrap_or_else(|| panic!("no form {form_name}"));
    let form = &page[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    assert!(!form.contains("<select name="), "the form has a <select>, which form_fields does not read");
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let end = rest.find('>').unwrap();
        let (tag, after) = (&rest[..end], &rest[end + 1..]);
        let attribute = |name: &str| -> Option<String> {
            let key = format!(" {name}=\"");
            let from = tag.find(&key)? + key.len();
            Some(html_decode(&tag[from..from + tag[from..].find('"')?]))
        };
        let flag = |name: &str| tag.split_whitespace().any(|word| word == name);
        if tag.starts_with("input") {
            let kind = attribute("type").unwrap_or_else(|| "text".into());
            let sent = match kind.as_str() {
                "checkbox" | "radio" => flag("checked"),
                "submit" | "button" | "image" | "reset" => false,
                _ => true,
            };
            if let (true, Some(name)) = (sent, attribute("name")) {
                fields.push((name, attribute("value").unwrap_or_default()));
            }
        } else if tag.starts_with("textarea")
            && let Some(name) = attribute("name")
        {
            let text = &after[..after.find("</textarea>").unwrap()];
            fields.push((name, html_decode(text)));
        }
        rest = after;
    }
    fields
}

/// `fields` as `application/x-www-form-urlencoded`.
pub fn form_encode(fields: &[(String, String)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    fields.iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect::<Vec<_>>().join("&")
}

/// Text with the entities BackupPC's `EscHTML` writes (`&amp;`, `&quot;`,
/// `&lt;`, `&gt;`, `&#xHH;`, and decimal `&#NN;`) decoded.
fn html_decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').unwrap_or(0);
        let entity = &rest[1..end.max(1)];
        let decoded = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) if end > 0 => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A BackupPC installation in a folder, its daemon started on demand.
pub struct BackupPc {
    /// The folder (`conf`, `top`, `log`, `run`, `perl`, `ssh`).
    pub dir: PathBuf,
    /// `config.pl` up to the owners' editing rights.
    base_config: String,
    daemon: Option<crate::Daemon>,
}

/// The `backuppc` account's ids.
pub fn backuppc_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("backuppc").unwrap().expect("the backuppc package creates its account");
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Gives `path` to the backuppc account.
pub fn give_to_backuppc(path: &Path) {
    let (uid, gid) = backuppc_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

impl BackupPc {
    /// Lays out the folders and a `config.pl` that loads Debian's defaults
    /// and moves every path into `dir`.
    pub fn new(dir: &Path) -> BackupPc {
        for sub in ["conf", "top", "top/pc", "top/pool", "top/cpool", "log", "run", "ssh"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
            give_to_backuppc(&dir.join(sub));
        }
        fs::create_dir_all(dir.join("perl")).unwrap();
        fs::write(dir.join("perl/BpcTestRelocate.pm"), RELOCATE_PM).unwrap();
        let d = dir.display();
        // RrdToolPath is emptied because Debian's names rrdtool, which is not
        // installed, and the web configuration editor saves nothing while a
        // program path is not an executable.
        let config = format!(
            "do '/usr/share/backuppc/conf/config.pl' // die(\"cannot load the default config: $@ $!\");\n\
             $Conf{{TopDir}}        = '{d}/top';\n\
             $Conf{{ConfDir}}       = '{d}/conf';\n\
             $Conf{{LogDir}}        = '{d}/log';\n\
             $Conf{{RunDir}}        = '{d}/run';\n\
             $Conf{{InstallDir}}    = '/usr/share/backuppc';\n\
             $Conf{{ServerPort}}    = -1;\n\
             $Conf{{PingCmd}}       = '';\n\
             $Conf{{SmbClientPath}} = '';\n\
             $Conf{{NmbLookupPath}} = '';\n\
             $Conf{{NmbLookupCmd}}  = '';\n\
             $Conf{{BackupsDisable}} = 1;\n\
             $Conf{{WakeupSchedule}} = [23.99];\n\
             $Conf{{XferLogLevel}}  = 2;\n\
             $Conf{{RrdToolPath}}   = '';\n"
        );
        fs::write(dir.join("conf/hosts"), "host        dhcp    user    moreUsers\n").unwrap();
        give_to_backuppc(&dir.join("conf/hosts"));
        let backuppc = BackupPc { dir: dir.to_owned(), base_config: config, daemon: None };
        backuppc.keep_owners_off_commands();
        backuppc
    }

    /// Writes `config.pl`: this installation's paths, then `extra`.
    fn write_config(&self, extra: &str) {
        let path = self.conf_dir().join("config.pl");
        fs::write(&path, format!("{}{extra}", self.base_config)).unwrap();
        give_to_backuppc(&path);
    }

    /// Leaves Debian's stock `CgiUserConfigEdit`: the web page lets a host's
    /// owner change RsyncSshArgs, RsyncArgs, ClientNameAlias and more.
    pub fn allow_owners_debians_edits(&self) {
        self.write_config("");
    }

    /// Adds to Debian's settings the lines `bpc-register check` asks for, so
    /// that no owner can change a command, path, argument or address, and
    /// checks that bpc-register now accepts the configuration.
    pub fn keep_owners_off_commands(&self) {
        self.write_config("");
        let edits = server::owner_edits::read(&self.conf_dir()).unwrap();
        self.write_config(&format!("{}\n", edits.fix_lines().join("\n")));
        let edits = server::owner_edits::read(&self.conf_dir()).unwrap();
        assert!(edits.is_safe(), "{}", edits.problem());
    }

    /// Runs Debian's web interface (`index.cgi` runs this script setuid
    /// backuppc) for a POST of the url-encoded `form` by the logged-in
    /// `remote_user`, and returns the page.
    pub fn cgi_post(&self, remote_user: &str, form: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("/usr/bin/setpriv")
            .args(["--reuid=backuppc", "--regid=backuppc", "--init-groups", "--", "/usr/bin/env", "-i"])
            .args(self.environment())
            .args([
                format!("REMOTE_USER={remote_user}"),
                "REQUEST_METHOD=POST".into(),
                "CONTENT_TYPE=application/x-www-form-urlencoded".into(),
                format!("CONTENT_LENGTH={}", form.len()),
                "SCRIPT_NAME=/backuppc/index.cgi".into(),
                "/usr/bin/perl".into(),
                "/usr/share/backuppc/lib/realindex.cgi".into(),
            ])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(form.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The fields of the form `form_name` on the page the CGI answers to
    /// `request` (a POST by `remote_user`), as a browser would send them
    /// back; see [`form_fields`].
    pub fn cgi_form(&self, remote_user: &str, request: &str, form_name: &str) -> Vec<(String, String)> {
        let page = self.cgi_post(remote_user, request);
        assert!(page.status.success(), "the CGI failed: {}", String::from_utf8_lossy(&page.stderr));
        form_fields(&String::from_utf8_lossy(&page.stdout), form_name)
    }

    /// `hosts` as BackupPC itself reads it: `BackupPC::Lib`'s
    /// `HostInfoRead`, run as backuppc with this installation's
    /// configuration; host → owner (`(none)` when the line has none).
    pub fn hosts_as_backuppc_reads(&self) -> BTreeMap<String, String> {
        let output = self.as_backuppc("/usr/bin/perl").args(["-e", HOST_INFO_READ]).output().unwrap();
        assert!(output.status.success(), "HostInfoRead failed: {}", String::from_utf8_lossy(&output.stderr));
        host_owner_lines(&output.stdout)
    }

    /// BackupPC's configuration folder (`conf-dir` of bpc-register).
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf")
    }

    /// The environment every BackupPC program runs with, as `NAME=value`.
    pub fn environment(&self) -> Vec<String> {
        vec![
            "HOME=/var/lib/backuppc".into(),
            "USER=backuppc".into(),
            "LOGNAME=backuppc".into(),
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
            format!("PERL5OPT=-I{} -MBpcTestRelocate", self.dir.join("perl").display()),
            format!("BPC_CONFDIR={}", self.conf_dir().display()),
        ]
    }

    /// A command that runs `program` as backuppc (BackupPC refuses root)
    /// with the relocation in its environment.
    fn as_backuppc(&self, program: &str) -> Command {
        let mut command = Command::new("/usr/bin/setpriv");
        command
            .args(["--reuid=backuppc", "--regid=backuppc", "--init-groups", "--", "/usr/bin/env", "-i"])
            .args(self.environment())
            .arg(program)
            .env_clear()
            .stdin(Stdio::null());
        command
    }

    /// `bpc-register`'s `reload-command` for this installation.
    pub fn reload_command(&self) -> Vec<String> {
        let mut command = vec!["/usr/bin/env".to_owned(), "-i".to_owned()];
        command.extend(self.environment());
        command.extend([format!("{BIN}/BackupPC_serverMesg"), "server".into(), "reload".into()]);
        command
    }

    /// Starts the daemon (which backups need for their host lock) and waits
    /// for its pid file, which it writes once its socket listens.
    pub fn start_daemon(&mut self) {
        let child = self.as_backuppc(&format!("{BIN}/BackupPC")).stdout(Stdio::null()).spawn().unwrap();
        let daemon = crate::Daemon::from_child(child, self.dir.join("log/LOG"));
        let pid_file = self.dir.join("run/BackupPC.pid");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.trim().is_empty()) {
            let alive =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(daemon.pid()).unwrap()), None).is_ok();
            assert!(alive && Instant::now() < deadline, "the BackupPC daemon did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(daemon);
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log/LOG")).unwrap_or_default()
    }

    /// Runs a BackupPC program as backuppc and returns its output.
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        self.as_backuppc(&format!("{BIN}/{program}")).args(args).output().unwrap()
    }

    /// A full (`-f`) or incremental (`-i`) backup of `host`; panics with
    /// BackupPC's transfer log when it fails.
    pub fn dump(&self, host: &str, kind: &str) {
        let output = self.tool("BackupPC_dump", &["-v", kind, host]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let expected = if kind == "-f" { "full backup complete" } else { "incr backup complete" };
        assert!(
            output.status.success() && stdout.contains(expected),
            "BackupPC_dump {kind} {host} failed:\n{stdout}\n{}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.last_xfer_log(host),
            self.log()
        );
    }

    /// The newest backup's number (BackupPC 4 renumbers them).
    pub fn newest_backup(&self, host: &str) -> u32 {
        let backups = fs::read_to_string(self.dir.join(format!("top/pc/{host}/backups"))).unwrap();
        let last = backups.lines().last().expect("at least one backup");
        last.split('\t').next().unwrap().parse().unwrap()
    }

    /// Restores all of `share` from backup `num` of `host` into `target`
    /// (whose parent must exist) on the same client.
    pub fn restore(&self, host: &str, num: u32, share: &Path, target: &Path) {
        let request_name = "restoreReq.test.1";
        let request = format!(
            "%RestoreReq = (\n  'fileList' => ['/'],\n  'hostDest' => '{host}',\n  'hostSrc' => '{host}',\n  'num' => {num},\n  \
             'pathHdrDest' => '/',\n  'pathHdrSrc' => '/',\n  'reqTime' => 0,\n  'shareDest' => '{}',\n  'shareSrc' => '{}',\n  \
             'user' => 'backuppc'\n);\n",
            target.display(),
            share.display()
        );
        let path = self.dir.join(format!("top/pc/{host}/{request_name}"));
        fs::write(&path, request).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let output = self.tool("BackupPC_restore", &["-v", host, host, request_name]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("restore complete"),
            "BackupPC_restore failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The newest transfer log of `host`, decompressed, for failure messages.
    pub fn last_xfer_log(&self, host: &str) -> String {
        let dir = self.dir.join(format!("top/pc/{host}"));
        let mut logs: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("XferLOG")));
        logs.sort();
        match logs.last() {
            Some(log) => {
                String::from_utf8_lossy(&self.tool("BackupPC_zcat", &[&log.display().to_string()]).stdout).into_owned()
            }
            None => String::from("(no transfer log)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_as_a_browser_sends_it() {
        let page = "<form name=\"other\"><input type=\"hidden\" name=\"no\" value=\"1\"></form>\n\
            <form method=\"post\" name=\"editForm\">\n\
            <input type=\"hidden\" name=\"action\" value=\"editConfig\">\n\
            <input type=\"text\" class=\"x\" name=\"v_zZ_Hosts_zZ_0_zZ_0\" size=\"20\" value=\"a&amp;b&quot;&#x09;&#65;\">\n\
            <input type=\"checkbox\" name=\"off\"  value=\"1\" onChange=\"x();\">\n\
            <input type=\"checkbox\" name=\"on\"  value=\"1\" checked>\n\
            <input type=\"button\" name=\"b\" value=\"Save\">\n\
            <textarea name=\"t\" rows=\"2\">x &lt; y</textarea>\n\
            </form><input type=\"hidden\" name=\"after\" value=\"1\">";
        let fields = form_fields(page, "editForm");
        let expected = [("action", "editConfig"), ("v_zZ_Hosts_zZ_0_zZ_0", "a&b\"\tA"), ("on", "1"), ("t", "x < y")];
        assert_eq!(fields, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
        assert_eq!(form_encode(&fields[..2]), "action=editConfig&v_zZ_Hosts_zZ_0_zZ_0=a%26b%22%09A");
        assert_eq!(html_decode("&bogus; & &#xZZ;"), "&bogus; & &#xZZ;");
    }
}
