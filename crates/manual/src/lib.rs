//! Man pages and shell completions for a program, generated from the same
//! clap `Command` that parses its command line, so that a new subcommand or
//! option appears in both without anyone copying `--help` by hand.
//!
//! [`write`] lays them out the way the Debian packages install them:
//! `man/NAME.SECTION` and `man/NAME-SUBCOMMAND.SECTION` (one page a
//! subcommand, as git does), `bash/NAME`, `zsh/_NAME` and `fish/NAME.fish`.
//! Hidden subcommands and options get neither a page nor a completion.

use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};
use std::fs;
use std::path::{Path, PathBuf};

/// What a program's pages say beyond its command line.
#[derive(Debug, Clone, Copy)]
pub struct Pages<'a> {
    /// The manual section of the program and its subcommands (`8`:
    /// commands an administrator runs).
    pub section: &'a str,
    /// The files the program reads, each with what it is, for the FILES
    /// section of the program's page.
    pub files: &'a [(&'a str, &'a str)],
    /// Other pages, as `name(section)`, for every page's SEE ALSO section.
    pub see_also: &'a [&'a str],
}

/// Why the pages or completions could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// A folder or file under the output folder could not be written.
    #[error("cannot write {path}: {source}; check that the folder is writable")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `see_also` entry is not `name(section)`.
    #[error("`{0}` is not a manual page reference such as `server.toml(5)`")]
    BadReference(String),
}

/// Writes the man pages and the bash, zsh and fish completions of `command`
/// under `dir` and returns the files written, in order.
pub fn write(command: clap::Command, pages: &Pages<'_>, dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    let man = dir.join("man");
    create_dir(&man)?;
    write_pages(&command, None, pages, &man, &mut written)?;
    let name = command.get_name().to_owned();
    for (shell, folder, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut visible_only(&command), &name, &mut script);
        let folder = dir.join(folder);
        create_dir(&folder)?;
        written.push(write_file(&folder.join(file), &script)?);
    }
    Ok(written)
}

/// The page of `command` and, after it, those of its visible subcommands.
fn write_pages(
    command: &clap::Command,
    parent: Option<&str>,
    pages: &Pages<'_>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), ManualError> {
    let name = command.get_display_name().unwrap_or_else(|| command.get_name()).to_owned();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .section(pages.section)
        .source(format!("bpc-enroll {}", env!("CARGO_PKG_VERSION")))
        .manual("bpc-enroll");
    man.render(&mut page).map_err(|source| ManualError::Write { path: dir.join(&name), source })?;
    let mut extra = Roff::new();
    if parent.is_none() && !pages.files.is_empty() {
        extra.control("SH", ["FILES"]);
        for (path, what) in pages.files {
            extra.control("TP", []).text([bold(*path)]).text([roman(*what)]);
        }
    }
    let mut references: Vec<String> = parent.map(|parent| format!("{parent}({})", pages.section)).into_iter().collect();
    references.extend(pages.see_also.iter().map(|reference| (*reference).to_owned()));
    if !references.is_empty() {
        extra.control("SH", ["SEE ALSO"]);
        let mut inlines = Vec::new();
        for (index, reference) in references.iter().enumerate() {
            let (page_name, section) = reference
                .strip_suffix(')')
                .and_then(|rest| rest.split_once('('))
                .ok_or_else(|| ManualError::BadReference(reference.clone()))?;
            let separator = if index + 1 < references.len() { ", " } else { "" };
            inlines.push(bold(page_name));
            inlines.push(roman(format!("({section}){separator}")));
        }
        extra.text(inlines);
    }
    page.extend_from_slice(extra.to_roff().as_bytes());
    written.push(write_file(&dir.join(format!("{name}.{}", pages.section)), &page)?);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, Some(&name), pages, dir, written)?;
    }
    Ok(())
}

/// A copy of a built `command` without its hidden subcommands and options:
/// clap_complete offers whatever it is given, hidden or not.
fn visible_only(command: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(command.get_name().to_owned())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(command.get_arguments().filter(|arg| !arg.is_hide_set()).cloned())
        .visible_aliases(command.get_visible_aliases().map(str::to_owned).collect::<Vec<_>>())
        .subcommands(command.get_subcommands().filter(|sub| !sub.is_hide_set()).map(visible_only));
    if let Some(version) = command.get_version() {
        copy = copy.version(version.to_owned());
    }
    if let Some(version) = command.get_long_version() {
        copy = copy.long_version(version.to_owned());
    }
    if let Some(about) = command.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(about) = command.get_long_about() {
        copy = copy.long_about(about.clone());
    }
    copy
}

fn create_dir(dir: &Path) -> Result<(), ManualError> {
    fs::create_dir_all(dir).map_err(|source| ManualError::Write { path: dir.to_owned(), source })
}

fn write_file(path: &Path, content: &[u8]) -> Result<PathBuf, ManualError> {
    fs::write(path, content).map_err(|source| ManualError::Write { path: path.to_owned(), source })?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn example() -> Command {
        Command::new("tool")
            .version("1.2.3")
            .about("Does things.")
            .subcommand(Command::new("one").about("The first thing.").arg(Arg::new("flag").long("flag")))
            .subcommand(
                Command::new("group")
                    .about("A group of things.")
                    .subcommand(Command::new("inner").about("The inner thing.")),
            )
            .subcommand(Command::new("secret").hide(true).about("Not for people."))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue).help("Say less"))
            .arg(Arg::new("internal").long("internal").hide(true))
    }

    const PAGES: Pages<'static> =
        Pages { section: "8", files: &[("/etc/tool.toml", "The configuration.")], see_also: &["tool.toml(5)"] };

    fn names(dir: &Path, written: &[PathBuf]) -> Vec<String> {
        written.iter().map(|path| path.strip_prefix(dir).unwrap().display().to_string()).collect()
    }

    #[test]
    fn writes_a_page_per_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(example(), &PAGES, dir.path()).unwrap();
        assert_eq!(
            names(dir.path(), &written),
            [
                "man/tool.8",
                "man/tool-one.8",
                "man/tool-group.8",
                "man/tool-group-inner.8",
                "bash/tool",
                "zsh/_tool",
                "fish/tool.fish"
            ]
        );
    }

    #[test]
    fn pages_list_files_and_references_and_subcommand_pages_name_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        write(example(), &PAGES, dir.path()).unwrap();
        let top = fs::read_to_string(dir.path().join("man/tool.8")).unwrap();
        assert!(top.contains(".TH TOOL 8  \"bpc-enroll "), "{top}");
        assert!(top.contains("tool\\-one(8)") && top.contains("tool\\-group(8)"), "{top}");
        assert!(!top.contains("secret"), "{top}");
        assert!(
            top.ends_with(
                ".SH FILES\n.TP\n\\fB/etc/tool.toml\\fR\nThe configuration.\n.SH \"SEE ALSO\"\n\\fBtool.toml\\fR(5)\n"
            ),
            "{top}"
        );
        let inner = fs::read_to_string(dir.path().join("man/tool-group-inner.8")).unwrap();
        assert!(inner.contains("tool\\-group\\-inner \\- The inner thing."), "{inner}");
        assert!(inner.ends_with(".SH \"SEE ALSO\"\n\\fBtool\\-group\\fR(8), \\fBtool.toml\\fR(5)\n"), "{inner}");
    }

    #[test]
    fn completions_offer_visible_subcommands_only() {
        let dir = tempfile::tempdir().unwrap();
        write(example(), &PAGES, dir.path()).unwrap();
        for file in ["bash/tool", "zsh/_tool", "fish/tool.fish"] {
            let script = fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(script.contains("inner") && script.contains("quiet"), "{file}: {script}");
            assert!(!script.contains("secret") && !script.contains("internal"), "{file}: {script}");
        }
    }

    #[test]
    fn a_reference_that_is_not_name_and_section_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pages = Pages { see_also: &["tool.toml"], ..PAGES };
        let error = write(example(), &pages, dir.path()).unwrap_err();
        assert_eq!(error.to_string(), "`tool.toml` is not a manual page reference such as `server.toml(5)`");
    }
}
