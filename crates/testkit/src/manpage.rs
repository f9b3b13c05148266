//! Man pages read the way the tests check them: the keys a configuration
//! page documents against the keys the parser accepts, the pages and
//! completions `generate-docs` writes against `--help`, and what `man`
//! itself says of a page.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The keys a section of a configuration page documents: every `.TP`
/// followed by `.B KEY`, with roff's `\-` read as `-`. `section` is the
/// `.SH` heading without quotes (`KEYS`, `[backuppc]`).
pub fn documented_keys(page: &str, section: &str) -> BTreeSet<String> {
    let mut lines = page.lines().skip_while(|line| heading(line) != Some(section)).skip(1);
    let mut keys = BTreeSet::new();
    while let Some(line) = lines.next() {
        if heading(line).is_some() {
            break;
        }
        if line == ".TP"
            && let Some(key) = lines.next().and_then(|next| next.strip_prefix(".B "))
        {
            keys.insert(key.replace("\\-", "-"));
        }
    }
    assert!(!keys.is_empty(), "no section {section:?} with keys in the page");
    keys
}

fn heading(line: &str) -> Option<&str> {
    line.strip_prefix(".SH ").map(|text| text.trim_matches('"'))
}

/// The fields that a `deny_unknown_fields` error says it expected
/// ("unknown field `x`, expected one of `a`, `b`, `c`", "expected `a` or
/// `b`" or "expected `a`").
pub fn expected_fields(error: &str) -> BTreeSet<String> {
    let list = error
        .split_once("expected one of ")
        .or_else(|| error.split_once("expected "))
        .unwrap_or_else(|| panic!("not an unknown-field error: {error}"))
        .1;
    list.split(", ").flat_map(|item| item.split(" or ")).map(|field| field.trim_matches('`').to_owned()).collect()
}

/// The text between `.nf` and `.fi` of the page's EXAMPLE section, with
/// roff's `\-` read as `-`.
pub fn example(page: &str) -> String {
    let section = page.split_once(".SH EXAMPLE\n").expect("an EXAMPLE section").1;
    let body = section.split_once(".nf\n").expect(".nf in EXAMPLE").1;
    body.split_once(".fi\n").expect(".fi in EXAMPLE").0.replace("\\-", "-")
}

/// Runs `program generate-docs` and checks what it wrote: exactly one page
/// for the program and one for each subcommand `--help` lists (`expected`
/// among them), each formatted by `man` without a warning, the program's
/// page referring to `see_also` first, and completions for the three shells
/// that offer every subcommand and not the hidden `generate-docs`.
pub fn check_generated_docs(program: &Path, expected: &str, see_also: &str) {
    let name = program.file_name().unwrap().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::run(Command::new(program).arg("generate-docs").arg(dir.path()));
    let subcommands = subcommands_in_help(program);
    assert!(subcommands.iter().any(|sub| sub == expected), "{subcommands:?}");
    // A page for the program, each subcommand and each of theirs.
    let mut wanted = BTreeSet::from([format!("{name}.8")]);
    for sub in &subcommands {
        wanted.insert(format!("{name}-{sub}.8"));
        for nested in subcommands_of(program, &[sub.as_str()]) {
            wanted.insert(format!("{name}-{sub}-{nested}.8"));
        }
    }
    let man = dir.path().join("man");
    let pages: BTreeSet<String> =
        std::fs::read_dir(&man).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(pages, wanted);
    for page in &pages {
        assert_formats_cleanly(&man.join(page));
    }
    let top = std::fs::read_to_string(man.join(format!("{name}.8"))).unwrap();
    let (page, section) = see_also.trim_end_matches(')').split_once('(').unwrap();
    assert!(top.contains(&format!(".SH \"SEE ALSO\"\n\\fB{page}\\fR({section})")), "{top}");
    for completion in [format!("bash/{name}"), format!("zsh/_{name}"), format!("fish/{name}.fish")] {
        let script = std::fs::read_to_string(dir.path().join(&completion)).unwrap();
        for sub in &subcommands {
            assert!(script.contains(sub.as_str()), "{completion} lacks {sub}");
        }
        assert!(!script.contains("generate-docs"), "{completion} offers the hidden generate-docs");
    }
}

/// The subcommands `program --help` lists, `help` aside.
pub fn subcommands_in_help(program: &Path) -> Vec<String> {
    subcommands_of(program, &[])
}

/// The subcommands `program ARGS... --help` lists.
fn subcommands_of(program: &Path, args: &[&str]) -> Vec<String> {
    let help = crate::run(Command::new(program).args(args).arg("--help"));
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Asserts that `man` formats `page` without a warning (skipped loudly
/// without man-db, a failure in CI).
pub fn assert_formats_cleanly(page: &Path) {
    if !crate::skip(module_path!(), crate::require_programs(&["/usr/bin/man"])) {
        assert_eq!(man_warnings(page), "", "{}", page.display());
    }
}

/// What `man --warnings` says on standard error while formatting `page`
/// (as lintian checks it); empty when the page is clean.
pub fn man_warnings(page: &Path) -> String {
    let output = Command::new("/usr/bin/man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .env("MANROFFSEQ", "")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(output.status.success(), "man {} failed: {}", page.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stderr).into_owned()
}
