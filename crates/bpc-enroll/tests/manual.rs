//! The manual: `client.toml(5)` documents exactly the keys the client
//! accepts, its example loads, and `generate-docs` writes a clean page and
//! completions for every subcommand `--help` lists.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use client::ClientConfig;
use client::config::UserConfig;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use testkit::manpage::{assert_formats_cleanly, check_generated_docs, documented_keys, example, expected_fields};

const PAGE: &str = include_str!("../man/client.toml.5");

/// The keys a file accepts, as its parser lists them when it meets an
/// unknown one.
fn accepted(load: impl Fn(&Path) -> Result<(), String>) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    fs::write(&path, "zz-unknown = 1\n").unwrap();
    expected_fields(&load(&path).unwrap_err())
}

#[test]
fn client_toml_5_documents_every_key_the_client_accepts_and_no_other() {
    let client = accepted(|path| ClientConfig::load(path).map(drop).map_err(|e| e.to_string()));
    assert_eq!(documented_keys(PAGE, "KEYS"), client);
    let user = accepted(|path| files::load_toml::<UserConfig>(path).map(drop).map_err(|e| e.to_string()));
    let per_user = PAGE.split_once(".SH \"PER-USER FILE\"\n").unwrap().1.split_once(".SH ").unwrap().0;
    let per_user: BTreeSet<String> = per_user
        .lines()
        .filter_map(|line| line.strip_prefix(".B ").or_else(|| line.strip_prefix(".BR ")))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|key| key.replace("\\-", "-"))
        .filter(|key| client.contains(key))
        .collect();
    assert_eq!(per_user, user, "the per-user section of client.toml(5)");
}

#[test]
fn client_toml_5_example_is_a_configuration_the_client_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    fs::write(&path, example(PAGE)).unwrap();
    let config = ClientConfig::load(&path).unwrap();
    assert_eq!(config.register_key, Some(dir.path().join("register_ed25519")));
    assert_eq!(config.allowed_paths, ["/home", "/etc"]);
    // The second example, over HTTPS.
    let rest = PAGE.split_once(".SH EXAMPLE\n").unwrap().1.split_once(".fi\n").unwrap().1;
    fs::write(&path, example(&format!(".SH EXAMPLE\n{rest}"))).unwrap();
    let config = ClientConfig::load(&path).unwrap();
    assert_eq!(config.server.as_deref(), Some("https://backup.example.org"));
    assert_eq!(config.ca_file, Some(dir.path().join("site/ca.pem")));
}

#[test]
fn client_toml_5_formats_without_a_warning() {
    assert_formats_cleanly(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/man/client.toml.5")));
}

#[test]
fn generate_docs_writes_a_clean_page_and_completions_for_every_subcommand() {
    check_generated_docs(Path::new(env!("CARGO_BIN_EXE_bpc-enroll")), "setup", "client.toml(5)");
}
