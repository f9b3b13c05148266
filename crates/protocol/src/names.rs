//! Checked names: a value of these types is known to be safe to write into
//! BackupPC's files, a log line or an LDAP filter without further quoting.

use std::fmt;

/// Why a text is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The text is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What the name was meant to be.
        kind: &'static str,
    },
    /// The text is longer than the name allows.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// What the name was meant to be.
        kind: &'static str,
        /// The longest name accepted.
        max: usize,
    },
    /// The text has a character the name does not allow.
    #[error("{kind} may only hold {allowed}")]
    BadCharacter {
        /// What the name was meant to be.
        kind: &'static str,
        /// The characters allowed, in words.
        allowed: &'static str,
    },
}

/// A directory login, as sent in `OS:logon`: an ASCII letter or digit, then up
/// to 63 letters, digits, `.`, `_` or `-`. Anything else cannot name a user, so
/// it is refused before any directory is asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Logon(String);

impl Logon {
    /// The longest logon accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks `text` as a logon.
    pub fn parse(text: &str) -> Result<Logon, NameError> {
        const KIND: &str = "logon";
        check_length(text, KIND, Self::MAX_LEN)?;
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if first_ok && rest_ok {
            Ok(Logon(text.to_owned()))
        } else {
            Err(NameError::BadCharacter {
                kind: KIND,
                allowed: "ASCII letters, digits, '.', '_' and '-', starting with a letter or digit",
            })
        }
    }

    /// The logon as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The OS part of `OS:logon`: 1 to 16 lowercase ASCII letters or digits.
/// Whether the server accepts that OS is a matter of its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsName(String);

impl OsName {
    /// The longest OS name accepted.
    pub const MAX_LEN: usize = 16;

    /// Checks `text` as an OS name.
    pub fn parse(text: &str) -> Result<OsName, NameError> {
        const KIND: &str = "OS name";
        check_length(text, KIND, Self::MAX_LEN)?;
        if text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            Ok(OsName(text.to_owned()))
        } else {
            Err(NameError::BadCharacter { kind: KIND, allowed: "lowercase ASCII letters and digits" })
        }
    }

    /// The OS name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A host name as BackupPC stores it: a lowercase fully qualified DNS name
/// without the trailing dot, at most 253 characters, labels of 1 to 63
/// letters, digits or `-` that neither start nor end with `-`. This is
/// stricter than BackupPC's own `[\w.\-]+`, so every `HostName` is one that
/// BackupPC accepts and that is safe as a file name (no `/`, never `..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// The longest host name accepted.
    pub const MAX_LEN: usize = 253;

    /// Normalises a DNS answer (case, one trailing dot) and checks it.
    pub fn parse(text: &str) -> Result<HostName, NameError> {
        let lower = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        check_dns_name(&lower, "host name", Self::MAX_LEN)?;
        Ok(HostName(lower))
    }

    /// Whether the host is `domain` itself or a name inside it. The match is
    /// on a label boundary: `evil-example.org` is not inside `example.org`.
    pub fn is_within(&self, domain: &Domain) -> bool {
        match self.0.strip_suffix(domain.as_str()) {
            Some("") => true,
            Some(prefix) => prefix.ends_with('.'),
            None => false,
        }
    }

    /// The host name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The institution's DNS domain, normalised: lowercase, without leading or
/// trailing dots (`.Example.ORG.` becomes `example.org`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    /// Normalises and checks a configured domain.
    pub fn parse(text: &str) -> Result<Domain, NameError> {
        let trimmed = text.strip_prefix('.').unwrap_or(text);
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        let lower = trimmed.to_ascii_lowercase();
        check_dns_name(&lower, "domain", HostName::MAX_LEN)?;
        Ok(Domain(lower))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `text` is a comma-separated list of addresses, host names or
/// patterns as sshd's `from=` takes them (letters, digits and `.:-/*?!_`),
/// with nothing that could end the option or start another.
pub fn is_address_list(text: &str) -> bool {
    AddressList::parse(text).is_ok()
}

/// A checked `from=` list: comma-separated addresses, host names or patterns
/// as sshd takes them, with nothing that could end the option or start
/// another, so it can go between the quotes of `from="..."` as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressList(String);

impl AddressList {
    /// Checks `text` as a `from=` list.
    pub fn parse(text: &str) -> Result<AddressList, NameError> {
        const KIND: &str = "address list";
        check_length(text, KIND, 4096)?;
        let ok = text
            .split(',')
            .all(|item| !item.is_empty() && item.chars().all(|c| c.is_ascii_alphanumeric() || ".:-/*?!_".contains(c)));
        match ok {
            true => Ok(AddressList(text.to_owned())),
            false => Err(NameError::BadCharacter {
                kind: KIND,
                allowed: "comma-separated addresses, names or patterns (letters, digits and .:-/*?!_)",
            }),
        }
    }

    /// The list as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A local account name as `useradd` accepts it by default: a lowercase
/// letter or `_`, then lowercase letters, digits, `_` or `-`, at most 32 in
/// all. Both sides use this one rule: the client creates the account, the
/// server writes it unquoted into `RsyncSshArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountName(String);

impl AccountName {
    /// The longest account name accepted.
    pub const MAX_LEN: usize = 32;

    /// Checks `text` as an account name.
    pub fn parse(text: &str) -> Result<AccountName, NameError> {
        const KIND: &str = "account name";
        check_length(text, KIND, Self::MAX_LEN)?;
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        match first_ok && rest_ok {
            true => Ok(AccountName(text.to_owned())),
            false => Err(NameError::BadCharacter {
                kind: KIND,
                allowed: "a lowercase letter or '_', then lowercase letters, digits, '_' or '-'",
            }),
        }
    }

    /// The account name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($name:ty),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Logon, OsName, HostName, Domain, AddressList, AccountName);

fn check_length(text: &str, kind: &'static str, max: usize) -> Result<(), NameError> {
    if text.is_empty() {
        Err(NameError::Empty { kind })
    } else if text.len() > max {
        Err(NameError::TooLong { kind, max })
    } else {
        Ok(())
    }
}

fn check_dns_name(text: &str, kind: &'static str, max: usize) -> Result<(), NameError> {
    check_length(text, kind, max)?;
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if text.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(NameError::BadCharacter {
            kind,
            allowed: "dot-separated labels of 1 to 63 letters, digits and '-' (not at either end)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_usual_logons() {
        let longest = "a".repeat(64);
        for text in ["alice", "j.doe", "jean-pierre_2", "X", longest.as_str()] {
            assert_eq!(Logon::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn rejects_hostile_logons() {
        let long = "a".repeat(65);
        for text in [
            "",
            "-rf",
            ".hidden",
            "../etc",
            "a/b",
            "a b",
            "a;b",
            "a$b",
            "a\nb",
            "a\0b",
            "a)(uid=*",
            "*",
            "é",
            "alice:",
            long.as_str(),
        ] {
            assert!(Logon::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn host_names_are_lowercased_without_trailing_dot() {
        assert_eq!(HostName::parse("PC-Alice.Example.ORG.").unwrap().as_str(), "pc-alice.example.org");
    }

    #[test]
    fn rejects_host_names_that_are_not_dns_names() {
        for text in ["", ".", "a..b", "-a.org", "a-.org", "a_b.org", "a/b", "..", "a b.org", "a.org..", "x\n.org"] {
            assert!(HostName::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(matches!(
            HostName::parse(&format!("{}.org", "a".repeat(64))),
            Err(NameError::BadCharacter { .. } | NameError::TooLong { .. })
        ));
    }

    #[test]
    fn domain_match_is_on_a_label_boundary() {
        let domain = Domain::parse(".Univ-Brest.fr").unwrap();
        assert_eq!(domain.as_str(), "univ-brest.fr");
        let within = |name: &str| HostName::parse(name).unwrap().is_within(&domain);
        assert!(within("pc.univ-brest.fr"));
        assert!(within("a.b.univ-brest.fr."));
        assert!(within("univ-brest.fr"));
        assert!(!within("evil-univ-brest.fr"));
        assert!(!within("univ-brest.fr.evil.net"));
        assert!(!within("brest.fr"));
    }

    #[test]
    fn address_lists_are_plain() {
        assert_eq!(AddressList::parse("192.0.2.10,::1").unwrap().as_str(), "192.0.2.10,::1");
        assert_eq!(AddressList::parse(""), Err(NameError::Empty { kind: "address list" }));
        assert_eq!(AccountName::parse("bckpciuem").unwrap().to_string(), "bckpciuem");
        assert!(AccountName::parse("_svc-1").is_ok());
        for bad in ["", "Root", "a b", "-x", "1abc", "a;b", "../x", "a\"b", &"a".repeat(33)] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(is_address_list("192.0.2.10,2001:db8::/32,*.example.org,!10.0.0.1"));
        for bad in ["", "a,,b", "1.2.3.4 ", "1.2.3.4\",command=\"x", "a\nb"] {
            assert!(!is_address_list(bad), "{bad:?}");
        }
    }

    #[test]
    fn os_names_are_lowercase_words() {
        assert!(OsName::parse("linux").is_ok());
        assert!(OsName::parse("mac").is_ok());
        for text in ["", "Linux", "lin ux", "l:x", "averyveryverylongos"] {
            assert!(OsName::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn logon_parsing_is_total_and_keeps_the_text(text in any::<String>()) {
            if let Ok(logon) = Logon::parse(&text) {
                prop_assert_eq!(logon.as_str(), text.as_str());
                prop_assert!(!logon.as_str().contains(['/', ' ', '\n', '\0', '*', '(', ')', '\\']));
            }
        }

        #[test]
        fn host_name_parsing_is_idempotent(text in any::<String>()) {
            if let Ok(host) = HostName::parse(&text) {
                let again = HostName::parse(host.as_str()).unwrap();
                prop_assert_eq!(&again, &host);
                prop_assert!(!host.as_str().contains('/') && host.as_str() != "..");
            }
        }

        #[test]
        fn valid_dns_names_round_trip(labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..5)) {
            let text = labels.join(".");
            let host = HostName::parse(&text).unwrap();
            prop_assert_eq!(host.as_str(), text.as_str());
        }
    }
}
