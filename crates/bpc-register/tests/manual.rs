//! The manual: `server.toml(5)` documents exactly the keys the server
//! accepts, its example loads, and `generate-docs` writes a clean page and
//! completions for every subcommand `--help` lists.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use testkit::ServerToml;
use testkit::manpage::{assert_formats_cleanly, check_generated_docs, documented_keys, example, expected_fields};

const PAGE: &str = include_str!("../man/server.toml.5");

/// The keys the server accepts in `table` (empty: the top level), as its
/// parser lists them when `config` has an unknown one there.
fn accepted(config: ServerToml, table: &str) -> BTreeSet<String> {
    let config = match table {
        "" => config.set("zz-unknown", 1),
        table => config.set_in(table, "zz-unknown", 1),
    };
    let dir = tempfile::tempdir().unwrap();
    let error = server::ServerConfig::load(&config.write(&dir.path().join("server.toml"))).unwrap_err();
    expected_fields(&error.to_string())
}

fn with(table: &str, kind: &str, entries: &[(&str, &str)]) -> ServerToml {
    let kind = [("kind", kind)];
    ServerToml::new().table(table, kind.iter().chain(entries).map(|(key, value)| (*key, toml::Value::from(*value))))
}

#[test]
fn server_toml_5_documents_every_key_the_server_accepts_and_no_other() {
    let ldap = with("directory", "ldap", &[("url", "ldap://ldap.example.org"), ("base", "dc=example,dc=org")]);
    let https = ServerToml::new().table("https", Vec::<(&str, toml::Value)>::new());
    let cases: [(&str, Vec<BTreeSet<String>>); 6] = [
        ("TOP-LEVEL KEYS", vec![accepted(ServerToml::new(), "")]),
        ("[backuppc]", vec![accepted(ServerToml::new(), "backuppc")]),
        ("[directory]", vec![accepted(ServerToml::new(), "directory"), accepted(ldap, "directory")]),
        (
            "[resolver]",
            vec![accepted(ServerToml::new(), "resolver"), accepted(with("resolver", "dns", &[]), "resolver")],
        ),
        ("[log]", vec![accepted(ServerToml::new(), "log"), accepted(with("log", "syslog", &[]), "log")]),
        ("[https]", vec![accepted(https, "https")]),
    ];
    for (section, kinds) in cases {
        let mut keys: BTreeSet<String> = kinds.into_iter().flatten().collect();
        let mut documented = documented_keys(PAGE, section);
        if section.starts_with('[') && !["[backuppc]", "[https]"].contains(&section) {
            keys.insert("kind".into());
        }
        if section == "TOP-LEVEL KEYS" {
            // The tables, each documented in a section of its own.
            documented.extend(["backuppc", "directory", "resolver", "log", "https"].map(String::from));
        }
        assert_eq!(documented, keys, "section {section} of server.toml(5)");
    }
}

#[test]
fn server_toml_5_example_and_the_packaged_example_are_configurations_the_server_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    for text in [example(PAGE), include_str!("../debian/server.toml").to_owned()] {
        fs::write(&path, &text).unwrap();
        let config = server::ServerConfig::load(&path).unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(config.domain.to_string(), "example.org");
    }
}

#[test]
fn server_toml_5_formats_without_a_warning() {
    assert_formats_cleanly(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/man/server.toml.5")));
}

#[test]
fn generate_docs_writes_a_clean_page_and_completions_for_every_subcommand() {
    check_generated_docs(Path::new(env!("CARGO_BIN_EXE_bpc-register")), "check", "server.toml(5)");
}
