//! Finding one host's lines in BackupPC's `hosts` as the file streams by.
//!
//! A registration needs the header and the lines of one host, not the whole
//! file as owned strings: [`find_host`] reads through a fixed buffer, finds
//! the lines in it, cleans in one reused buffer exactly as `HostInfoRead`
//! does ([`clean_line`], shared with [`crate::registry::parse_hosts`]) the
//! lines that may be the header or name the host, and splits into fields
//! only the header and the lines whose name is the host's. Its memory does
//! not grow with the file; its time grows linearly with it, a few
//! nanoseconds a line.

use crate::registry::{HOSTS_HEADER, host_fields};
use std::io::{self, BufRead};

/// What a registration needs to know of `hosts` about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLookup {
    /// The header's field names, as BackupPC reads the lines below it: the
    /// file's own, or BackupPC's standard header when the file has none that
    /// names `host` first and `user` (see [`HostLookup::header_missing`]).
    pub header: Vec<String>,
    /// Whether BackupPC's standard header must be put in front of the file:
    /// without it BackupPC takes the first host line for the header and sees
    /// no owner at all.
    pub header_missing: bool,
    /// The `user` column of each of the host's lines, in file order (more
    /// than one when the file has duplicate lines).
    pub owners: Vec<String>,
    /// Whether the file is empty.
    pub empty: bool,
    /// Whether the file's last byte is a newline.
    pub ends_with_newline: bool,
}

impl HostLookup {
    /// The owner BackupPC's daemon and web page see: of duplicate lines,
    /// `HostInfoRead()` keeps the last.
    pub fn owner(&self) -> Option<&str> {
        self.owners.last().map(String::as_str)
    }
}

/// The newlines of a chunk of `hosts`, found with SIMD without asking the
/// CPU what it supports.
///
/// `memchr`'s own entry point asks once per process (`cpuid`, a trap to the
/// hypervisor in a virtual machine: about a tenth of a millisecond of each
/// registration on a 2-core VM, where sshd starts a process per request).
/// On x86-64 its SSE2 searcher needs no asking, SSE2 being part of every
/// x86-64 CPU, and is as fast as the wider one for lines of a few dozen
/// bytes; elsewhere `memchr` picks without asking.
enum Newlines<'h> {
    #[cfg(target_arch = "x86_64")]
    Sse2(memchr::arch::x86_64::sse2::memchr::OneIter<'static, 'h>),
    Any(memchr::Memchr<'h>),
}

#[cfg(target_arch = "x86_64")]
static SSE2_NEWLINE: std::sync::LazyLock<Option<memchr::arch::x86_64::sse2::memchr::One>> =
    std::sync::LazyLock::new(|| memchr::arch::x86_64::sse2::memchr::One::new(b'\n'));

impl<'h> Newlines<'h> {
    fn of(chunk: &'h [u8]) -> Newlines<'h> {
        #[cfg(target_arch = "x86_64")]
        if let Some(finder) = SSE2_NEWLINE.as_ref() {
            return Newlines::Sse2(finder.iter(chunk));
        }
        Newlines::Any(memchr::memchr_iter(b'\n', chunk))
    }
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Newlines::Sse2(iter) => iter.next(),
            Newlines::Any(iter) => iter.next(),
        }
    }
}

/// Reads `hosts` from `reader` and finds the lines of `host` (compared
/// without case, as BackupPC lowercases names), with the same result as
/// [`crate::registry::parse_hosts`] on the file given the header
/// [`crate::registry::BackupPcRegistry`] would put in front of it.
///
/// The lines are found in the reader's own buffer ([`Newlines`]), and a line is
/// cleaned only when it could be the header or the host's: once the header
/// is known, a line that starts neither with the host's name (without case)
/// nor with a CR within its first name's length cannot name the host, since
/// cleaning changes the start of a line only by taking out a run of CRs.
pub fn find_host(reader: impl BufRead, host: &str) -> io::Result<HostLookup> {
    let mut lookups = find_hosts(reader, &[host])?;
    Ok(lookups.pop().unwrap_or_default())
}

/// [`find_host`] for several hosts in one reading of the file: one lookup
/// per host, in the order given, the same header and ends in each.
pub fn find_hosts(mut reader: impl BufRead, hosts: &[&str]) -> io::Result<Vec<HostLookup>> {
    let mut scan = Scan {
        hosts: hosts.iter().map(|host| host.as_bytes()).collect(),
        lookup: HostLookup { empty: true, ..HostLookup::default() },
        owners: vec![Vec::new(); hosts.len()],
        scratch: Vec::new(),
        header: None,
        user_index: None,
    };
    // A line cut in two by the end of the buffer is put together here.
    let mut split_line = Vec::new();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let chunk_len = chunk.len();
        let mut start = 0;
        for end in Newlines::of(chunk) {
            let line = chunk.get(start..end).unwrap_or_default();
            if split_line.is_empty() {
                scan.line(line, true);
            } else {
                split_line.extend_from_slice(line);
                scan.line(&split_line, true);
                split_line.clear();
            }
            start = end + 1;
        }
        split_line.extend_from_slice(chunk.get(start..).unwrap_or_default());
        reader.consume(chunk_len);
    }
    if !split_line.is_empty() {
        scan.line(&split_line, false);
    }
    let mut lookup = scan.lookup;
    match scan.header {
        Some(header) => lookup.header = header,
        None => {
            lookup.header = HOSTS_HEADER.split_whitespace().map(str::to_owned).collect();
            lookup.header_missing = true;
        }
    }
    Ok(scan.owners.into_iter().map(|owners| HostLookup { owners, ..lookup.clone() }).collect())
}

/// What [`find_host`] knows so far.
struct Scan<'a> {
    hosts: Vec<&'a [u8]>,
    /// What is common to every host's lookup (its `owners` unused).
    lookup: HostLookup,
    /// Each host's owners, in the order of `hosts`.
    owners: Vec<Vec<String>>,
    scratch: Vec<u8>,
    header: Option<Vec<String>>,
    user_index: Option<usize>,
}

impl Scan<'_> {
    /// One line, without its newline (`terminated`: it had one).
    fn line(&mut self, line: &[u8], terminated: bool) {
        self.lookup.empty = false;
        self.lookup.ends_with_newline = terminated;
        if self.header.is_some() && !self.hosts.iter().any(|host| may_name_host(line, host)) {
            return;
        }
        let Some(name_len) = clean_line(line, &mut self.scratch) else { return };
        if self.header.is_none() {
            let fields = host_fields(line).unwrap_or_default();
            let usable = fields.first().is_some_and(|first| first == "host") && fields.iter().any(|f| f == "user");
            let names = if usable {
                fields
            } else {
                self.lookup.header_missing = true;
                HOSTS_HEADER.split_whitespace().map(str::to_owned).collect()
            };
            self.user_index = names.iter().rposition(|name| name == "user");
            self.header = Some(names);
            if usable {
                return;
            }
        }
        let name = self.scratch.get(..name_len).unwrap_or_default();
        // A name holding a backslash is never a host name once unescaped.
        if name.contains(&b'\\') {
            return;
        }
        let Some(found) = self.hosts.iter().position(|host| name.eq_ignore_ascii_case(host)) else { return };
        let fields = host_fields(line).unwrap_or_default();
        let owner = self.user_index.and_then(|index| fields.get(index)).cloned().unwrap_or_default();
        for (host, owners) in self.hosts.iter().zip(self.owners.iter_mut()).skip(found) {
            if name.eq_ignore_ascii_case(host) {
                owners.push(owner.clone());
            }
        }
    }
}

/// Whether cleaning `line` could leave `host`'s name at its start: it
/// starts with the name (without case), or a CR lies where the name and
/// the white space after it would be.
fn may_name_host(line: &[u8], host: &[u8]) -> bool {
    let start = line.get(..host.len()).unwrap_or(line);
    let first_matches = match (line.first(), host.first()) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    (first_matches && start.eq_ignore_ascii_case(host)) || line.get(..=host.len()).unwrap_or(line).contains(&b'\r')
}

/// Cleans one line (without its newline) into `out` as `HostInfoRead` does:
/// the first run of CR or LF goes (`s/[\n\r]+//`), `#` starts a comment,
/// trailing white space goes. Gives the length of the leading name
/// (`[\w.\\-]+`) when it is followed by white space, which is when BackupPC
/// counts the line at all; `None` otherwise.
pub(crate) fn clean_line(raw: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    out.extend_from_slice(raw);
    if let Some(start) = out.iter().position(|b| *b == b'\r' || *b == b'\n') {
        let len = out.iter().skip(start).take_while(|b| **b == b'\r' || **b == b'\n').count();
        out.drain(start..start + len);
    }
    if let Some(comment) = out.iter().position(|b| *b == b'#') {
        out.truncate(comment);
    }
    while out.last().is_some_and(|b| is_space(*b)) {
        out.pop();
    }
    let name_len =
        out.iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'\\' | b'-')).count();
    (name_len > 0 && out.get(name_len).is_some_and(|b| is_space(*b))).then_some(name_len)
}

/// Perl's `\s` on bytes: space, tab, LF, VT, FF and CR.
pub(crate) fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::parse_hosts;

    /// What `parse_hosts` says of `host`, on the file with the header the
    /// registry would put in front.
    fn expected(bytes: &[u8], host: &str) -> (Vec<String>, bool, Vec<String>) {
        let file = parse_hosts(bytes);
        let missing = !file.has_usable_header();
        let fixed = if missing { [HOSTS_HEADER.as_bytes(), bytes].concat() } else { bytes.to_vec() };
        let file = parse_hosts(&fixed);
        let owners = file.owners_of(host).into_iter().map(str::to_owned).collect();
        (file.header.unwrap_or_default(), missing, owners)
    }

    fn found(bytes: &[u8], host: &str) -> (Vec<String>, bool, Vec<String>) {
        let lookup = find_host(bytes, host).unwrap();
        (lookup.header, lookup.header_missing, lookup.owners)
    }

    #[test]
    fn finds_the_hosts_lines_as_parse_hosts_does() {
        let cases: &[&[u8]] = &[
            b"",
            b"# only comments\n\n",
            b"host dhcp user moreUsers\npc1 0 alice\nPC1 0 mallory\n",
            b"pc1 0 alice\npc2 0 bob\n",
            b"host user dhcp\npc1 alice 0\n",
            b"host dhcp user user\npc1 0 alice mallory\n",
            b"host dhcp user moreUsers\r\np\rc1 0 alice\r\n",
            b"host dhcp user\n  pc1 0 indented\npc1\\ x 0 escaped\npc1 0 carol # c\xe9\npc1",
            b"host moreUsers\npc1 0 alice\n",
            b"host dhcp user\n\rpc1 0 cr-first\npc\r1 0 cr-inside\npc1\r 0 cr-after\npc 0 short\npc1x 0 longer\n",
        ];
        for bytes in cases {
            assert_eq!(found(bytes, "pc1"), expected(bytes, "pc1"), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn reads_through_a_small_buffer_the_same() {
        let bytes = b"host dhcp user\nother 0 bob\npc1 0 alice\n";
        let small = io::BufReader::with_capacity(3, &bytes[..]);
        assert_eq!(find_host(small, "PC1").unwrap().owner(), Some("alice"));
        let lookup = find_host(&b"host dhcp user\npc1 0 alice"[..], "pc1").unwrap();
        assert!(!lookup.ends_with_newline && !lookup.empty);
    }

    #[test]
    fn finds_every_newline_of_a_long_chunk_as_a_byte_by_byte_search_does() {
        // Lines of 0 to 99 bytes, so that newlines fall at every offset of
        // the searcher's 16- and 64-byte steps and in its tail.
        let bytes: Vec<u8> = (0..3000u32)
            .flat_map(|n| std::iter::repeat_n(b'a' + (n % 26) as u8, (n * 7 % 100) as usize).chain([b'\n']))
            .collect();
        for start in 0..64 {
            let chunk = bytes.get(start..).unwrap();
            let expected: Vec<usize> = (0..chunk.len()).filter(|&at| chunk.get(at) == Some(&b'\n')).collect();
            assert_eq!(Newlines::of(chunk).collect::<Vec<_>>(), expected, "from {start}");
        }
    }

    /// Lines of `hosts` made mostly of the bytes that matter to the scan:
    /// host names' letters, white space, CR, backslash, `#`.
    fn hosts_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::{Just, any};
        let byte = proptest::prop_oneof![
            Just(b'p'),
            Just(b'c'),
            Just(b'1'),
            Just(b'2'),
            Just(b' '),
            Just(b'\t'),
            Just(b'\n'),
            Just(b'\r'),
            Just(b'\\'),
            Just(b'#'),
            Just(b'P'),
            any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..80)
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_parse_hosts_on_any_bytes(input in hosts_bytes(), header in proptest::prelude::any::<bool>()) {
            let bytes = if header { [b"host dhcp user\n".as_slice(), &input].concat() } else { input };
            proptest::prop_assert_eq!(found(&bytes, "pc1"), expected(&bytes, "pc1"));
        }

        #[test]
        fn several_hosts_are_found_as_each_alone(input in hosts_bytes()) {
            let bytes = [b"host dhcp user\n".as_slice(), &input].concat();
            let hosts = ["pc1", "pc12", "PC2", "pc1", "p"];
            let together = find_hosts(&bytes[..], &hosts).unwrap();
            proptest::prop_assert_eq!(together.len(), hosts.len());
            for (host, lookup) in hosts.iter().zip(together) {
                proptest::prop_assert_eq!(lookup, find_host(&bytes[..], host).unwrap());
            }
        }
    }
}
