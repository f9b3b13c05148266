//! The answer to a status request (`info:`): `success`, then what the
//! server knows of the host the request came from, as keyword lines.
//!
//! ```text
//! success
//! host: pc-alice.example.org
//! registered: yes
//! owner: alice
//! url: http://backup.example.org/backuppc/index.cgi?host=pc-alice.example.org
//! last-backup: 2026-12-02T18:36:44Z
//! ```
//!
//! `host` and `registered` are always there; `owner`, `url` and
//! `last-backup` (when the last full or incremental backup started, in UTC,
//! or `none`) only for a registered host. A keyword a client does not know
//! is ignored, one it knows but that is absent means "not said".

use crate::answer::{SuccessAnswer, render_success};
use crate::names::HostName;
use crate::text::hides_text;

/// What the server knows of the host a status request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The name the server found for the request's address, the way a
    /// registration finds it.
    pub host: HostName,
    /// Its registration, `None` when `hosts` has no line for it.
    pub registered: Option<Registered>,
}

/// A registered host's line, as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The `user` column of its `hosts` line, shown as it is.
    pub owner: Option<String>,
    /// The host's BackupPC page, when the server says.
    pub url: Option<String>,
    /// Its last backup, when the server says.
    pub last_backup: Option<LastBackup>,
}

/// What `last-backup:` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastBackup {
    /// `none`: BackupPC has no full or incremental backup of the host yet.
    None,
    /// When the last one started, in RFC 3339 UTC to the second
    /// (`2026-12-02T18:36:44Z`), as the journal writes its times.
    Started(String),
}

impl LastBackup {
    /// The value of `last-backup:`.
    pub fn as_str(&self) -> &str {
        match self {
            LastBackup::None => "none",
            LastBackup::Started(time) => time,
        }
    }

    /// Reads the value of `last-backup:`: `none`, or a time of exactly the
    /// shape `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse(text: &str) -> Option<LastBackup> {
        if text == "none" {
            return Some(LastBackup::None);
        }
        const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:ddZ";
        let fits = text.len() == SHAPE.len()
            && text.bytes().zip(SHAPE).all(|(byte, want)| match want {
                b'd' => byte.is_ascii_digit(),
                _ => byte == *want,
            });
        fits.then(|| LastBackup::Started(text.to_owned()))
    }
}

/// Why a `success` answer is not a usable answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoAnswerError {
    /// A keyword every status answer has is missing.
    #[error("it has no {0}: line")]
    Missing(&'static str),
    /// A keyword's value cannot be what it names.
    #[error("{keyword}: is not {expected}")]
    Bad {
        /// The keyword.
        keyword: &'static str,
        /// What its value should be.
        expected: &'static str,
    },
}

impl HostInfo {
    /// The answer's text: `success` and the keyword lines.
    pub fn render(&self) -> String {
        let said = if self.registered.is_some() { "yes" } else { "no" };
        let mut fields = vec![("host", self.host.as_str()), ("registered", said)];
        if let Some(registered) = &self.registered {
            fields.extend(registered.owner.as_deref().map(|owner| ("owner", owner)));
            fields.extend(registered.url.as_deref().map(|url| ("url", url)));
            fields.extend(registered.last_backup.as_ref().map(|last| ("last-backup", last.as_str())));
        }
        render_success(fields)
    }

    /// Reads the keyword lines of a `success` answer to a status request.
    /// Every value is checked here, so nothing unchecked reaches the person.
    pub fn from_answer(answer: &SuccessAnswer) -> Result<HostInfo, InfoAnswerError> {
        let host = answer.get("host").ok_or(InfoAnswerError::Missing("host"))?;
        let host =
            HostName::parse(host).map_err(|_| InfoAnswerError::Bad { keyword: "host", expected: "a host name" })?;
        let registered = match answer.get("registered").ok_or(InfoAnswerError::Missing("registered"))? {
            "no" => return Ok(HostInfo { host, registered: None }),
            "yes" => Registered {
                owner: answer.get("owner").map(str::to_owned),
                url: answer.get("url").map(str::to_owned),
                last_backup: answer
                    .get("last-backup")
                    .map(|text| LastBackup::parse(text).ok_or(BAD_LAST_BACKUP))
                    .transpose()?,
            },
            _ => return Err(InfoAnswerError::Bad { keyword: "registered", expected: "yes or no" }),
        };
        if registered.owner.as_deref().is_some_and(|owner| owner.contains(hides_text)) {
            return Err(InfoAnswerError::Bad { keyword: "owner", expected: "plain text" });
        }
        if registered.url.as_deref().is_some_and(|url| !is_web_url(url)) {
            return Err(InfoAnswerError::Bad { keyword: "url", expected: "an http(s) URL" });
        }
        Ok(HostInfo { host, registered: Some(registered) })
    }
}

const BAD_LAST_BACKUP: InfoAnswerError =
    InfoAnswerError::Bad { keyword: "last-backup", expected: "none or a UTC time (YYYY-MM-DDTHH:MM:SSZ)" };

/// Whether `text` is an `http://` or `https://` URL with nothing in it that
/// would break a line or hide text from the person reading it.
pub fn is_web_url(text: &str) -> bool {
    (text.starts_with("http://") || text.starts_with("https://"))
        && !text.contains(|c: char| c.is_whitespace() || hides_text(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{Answer, parse_answer};
    use proptest::prelude::*;

    fn read(text: &str) -> Result<HostInfo, InfoAnswerError> {
        let Answer::Success(success) = parse_answer(text.as_bytes()) else { panic!("not a success: {text}") };
        HostInfo::from_answer(&success)
    }

    fn host(name: &str) -> HostName {
        HostName::parse(name).unwrap()
    }

    #[test]
    fn a_registered_host_is_rendered_with_its_owner_and_page() {
        let info = HostInfo {
            host: host("pc-alice.example.org"),
            registered: Some(Registered {
                owner: Some("alice".into()),
                url: Some("http://b/?host=pc-alice.example.org".into()),
                last_backup: Some(LastBackup::Started("2026-12-02T18:36:44Z".into())),
            }),
        };
        let text = "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\n\
                    url: http://b/?host=pc-alice.example.org\nlast-backup: 2026-12-02T18:36:44Z\n";
        assert_eq!(info.render(), text);
        assert_eq!(read(text), Ok(info));
    }

    #[test]
    fn a_host_without_a_line_is_only_named() {
        let info = HostInfo { host: host("pc-bob.example.org"), registered: None };
        assert_eq!(info.render(), "success\nhost: pc-bob.example.org\nregistered: no\n");
        // Anything said beside `registered: no` is not taken.
        assert_eq!(read("success\nhost: pc-bob.example.org\nregistered: no\nowner: mallory\n"), Ok(info));
    }

    #[test]
    fn keywords_it_does_not_know_are_ignored_and_those_it_does_are_checked() {
        let read_ok =
            read("success\nweather: fine\nregistered: yes\nhost: PC.Example.org.\nlast-seen: never\n").unwrap();
        let nothing_said = Registered { owner: None, url: None, last_backup: None };
        assert_eq!(read_ok, HostInfo { host: host("pc.example.org"), registered: Some(nothing_said) });
        let none_yet = read("success\nhost: pc.example.org\nregistered: yes\nlast-backup: none\n").unwrap();
        assert_eq!(none_yet.registered.unwrap().last_backup, Some(LastBackup::None));
        assert_eq!(read("success\nregistered: yes\n"), Err(InfoAnswerError::Missing("host")));
        assert_eq!(read("success\nhost: pc.example.org\n"), Err(InfoAnswerError::Missing("registered")));
        let bad = |keyword, expected| Err(InfoAnswerError::Bad { keyword, expected });
        assert_eq!(read("success\nhost: ../etc\nregistered: no\n"), bad("host", "a host name"));
        assert_eq!(read("success\nhost: pc.example.org\nregistered: maybe\n"), bad("registered", "yes or no"));
        assert_eq!(
            read("success\nhost: pc.example.org\nregistered: yes\nurl: javascript:alert(1)\n"),
            bad("url", "an http(s) URL")
        );
        for time in ["yesterday", "2026-12-02 18:36:44Z", "2026-12-02T18:36:44+01:00", "2026-12-02T18:36:4Z"] {
            let text = format!("success\nhost: pc.example.org\nregistered: yes\nlast-backup: {time}\n");
            assert_eq!(read(&text), Err(BAD_LAST_BACKUP), "{time}");
        }
        assert_eq!(
            read("success\nhost: pc.example.org\nregistered: yes\nowner: al\u{202E}ice\n"),
            bad("owner", "plain text")
        );
    }

    proptest! {
        #[test]
        fn rendered_answers_read_back(
            name in "[a-z]([a-z0-9-]{0,10}[a-z0-9])?\\.example\\.org",
            registered in any::<bool>(),
            owner in proptest::option::of("[!-~]{1,20}"),
            url in proptest::option::of("https?://[!-~]{0,30}"),
            last_backup in proptest::option::of(proptest::option::of("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")),
        ) {
            let last_backup = last_backup.map(|time| time.map_or(LastBackup::None, LastBackup::Started));
            let registered = registered.then_some(Registered { owner, url, last_backup });
            let info = HostInfo { host: host(&name), registered };
            prop_assert_eq!(read(&info.render()), Ok(info));
        }

        #[test]
        fn reading_never_panics(fields in prop::collection::vec(("[a-z-]{1,12}", any::<String>()), 0..8)) {
            let text = render_success(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let _ = read(&text);
        }
    }
}
