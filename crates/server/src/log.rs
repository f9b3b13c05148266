//! The server's event log: every refusal and every registration, with a level.

use crate::config::LogConfig;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// How serious an event is, with syslog's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The server's fault: the administrator must act.
    Err,
    /// Something odd that did not stop the registration.
    Warning,
    /// The client's mistake.
    Notice,
    /// A registration made, or a status request answered.
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Err => "err",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
        })
    }
}

/// Where events go. A log that cannot be written never stops a registration:
/// the event then goes to standard error.
#[derive(Debug, Clone)]
pub enum EventLog {
    /// Standard error.
    Stderr,
    /// A file, appended to, one line per event.
    File(PathBuf),
    /// The system log, through its datagram socket.
    Syslog {
        /// The facility, e.g. `local3`.
        facility: syslog::Facility,
        /// The socket, e.g. `/dev/log`.
        socket: PathBuf,
    },
}

impl EventLog {
    /// The log the configuration asks for.
    pub fn from_config(config: &LogConfig) -> EventLog {
        match config {
            LogConfig::Stderr => EventLog::Stderr,
            LogConfig::File { path } => EventLog::File(path.clone()),
            LogConfig::Syslog { facility, socket } => EventLog::Syslog {
                facility: facility.parse().unwrap_or(syslog::Facility::LOG_LOCAL3),
                socket: socket.clone(),
            },
        }
    }

    /// Writes one event. `message` must already be one line of trusted text;
    /// untrusted text is passed through [`escape`] first.
    pub fn log(&self, level: Level, message: &str) {
        let line = format!("{level} {} bpc-register[{}]: {message}\n", timestamp(), std::process::id());
        if let EventLog::Syslog { facility, socket } = self {
            match to_syslog(*facility, socket, level, message) {
                Ok(()) => return,
                Err(error) => {
                    eprintln!("warning bpc-register: cannot write to syslog at {}: {error}", socket.display())
                }
            }
        }
        if let EventLog::File(path) = self {
            // A link planted in place of the log must not send the lines
            // (and the write) to a file of someone else's choosing; a log
            // root creates goes to the folder's owner, who logs next.
            let written =
                crate::shared_file::open(path, OpenOptions::new().append(true), 0o640).and_then(|mut file| {
                    if !file.metadata()?.is_file() {
                        return Err(std::io::Error::other("not a regular file"));
                    }
                    file.write_all(line.as_bytes())
                });
            match written {
                Ok(()) => return,
                Err(error) => eprintln!("warning bpc-register: cannot write the log {}: {error}", path.display()),
            }
        }
        eprint!("{line}");
    }
}

/// Makes untrusted text safe for one log line: printable ASCII stays, the
/// rest is escaped, and the result is cut at 200 characters.
pub use protocol::text::escape;

/// Sends one message to syslog with the level's severity.
fn to_syslog(facility: syslog::Facility, socket: &std::path::Path, level: Level, message: &str) -> Result<(), String> {
    let formatter =
        syslog::Formatter3164 { facility, hostname: None, process: "bpc-register".into(), pid: std::process::id() };
    let mut logger = syslog::unix_custom(formatter, socket).map_err(|e| e.to_string())?;
    let sent = match level {
        Level::Err => logger.err(message),
        Level::Warning => logger.warning(message),
        Level::Notice => logger.notice(message),
        Level::Info => logger.info(message),
    };
    sent.map_err(|e| e.to_string())
}

fn timestamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_one_line_and_bounds_its_length() {
        assert_eq!(escape(b"linux:a\nb\0\xff"), "linux:a\\nb\\x00\\xff");
        assert_eq!(escape(&[b'a'; 500]).len(), 203);
    }

    #[test]
    fn file_log_appends_level_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("register.log");
        let log = EventLog::File(path.clone());
        log.log(Level::Notice, "one");
        log.log(Level::Err, "two");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("notice ") && lines[0].ends_with(": one"), "{text}");
        assert!(lines[1].starts_with("err ") && lines[1].ends_with(": two"), "{text}");
    }

    #[test]
    fn a_log_replaced_by_a_link_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("authorized_keys");
        std::fs::write(&victim, "ssh-ed25519 AAAA owner\n").unwrap();
        let path = dir.path().join("register.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        EventLog::File(path).log(Level::Notice, "ssh-ed25519 AAAA attacker");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "ssh-ed25519 AAAA owner\n");
    }
}
