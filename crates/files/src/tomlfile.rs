//! TOML configuration files with errors that point at the line and the key.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a TOML file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TomlError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("{path}:{line}:{column}: {key}{message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the fault, from 1.
        line: usize,
        /// The column of the fault, from 1.
        column: usize,
        /// The dotted key at fault followed by ": ", or empty when unknown.
        key: String,
        /// What is wrong, as the parser said it.
        message: String,
    },
}

/// Reads and parses a TOML file.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, TomlError> {
    let text = std::fs::read_to_string(path).map_err(|source| TomlError::Read { path: path.to_owned(), source })?;
    parse_toml(&text, path)
}

/// Parses TOML text; `path` only names the source in errors.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, TomlError> {
    let invalid = |error: toml::de::Error, key: String| {
        let offset = error.span().map_or(0, |span| span.start).min(text.len());
        let before = text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let key = if key.is_empty() || key == "." { String::new() } else { format!("key `{key}`: ") };
        TomlError::Invalid { path: path.to_owned(), line, column, key, message: error.message().trim().to_owned() }
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|error| invalid(error, String::new()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        invalid(error.into_inner(), key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        count: u32,
    }

    fn error_of(text: &str) -> String {
        parse_toml::<Sample>(text, Path::new("/etc/x.toml")).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let message = error_of("name = \"a\"\n\n[inner]\ncolour = 1\n");
        assert!(message.starts_with("/etc/x.toml:4:1: "), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let message = error_of("name = \"a\"\n[inner]\ncount = \"many\"\n");
        assert!(message.starts_with("/etc/x.toml:3:"), "{message}");
        assert!(message.contains("key `inner.count`"), "{message}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let message = error_of("name = \"a\"\nthis is not toml\n");
        assert!(message.starts_with("/etc/x.toml:2:"), "{message}");
    }
}
