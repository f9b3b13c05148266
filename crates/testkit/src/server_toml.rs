//! `server.toml` for a test: the embedded backends with relative paths, and
//! whatever a test changes, rendered by the `toml` crate so that no test
//! writes TOML by hand.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A `server.toml` being built. [`ServerToml::new`] starts from:
///
/// ```toml
/// domain = "example.org"
/// [backuppc]
/// conf-dir = "backuppc"
/// url = "http://backup.example.org/?host={host}"
/// key = "backuppc_key.pub"
/// reload-command = []
/// [directory]
/// kind = "file"
/// path = "users.toml"
/// [resolver]
/// kind = "static"
/// path = "hosts.static"
/// [log]
/// kind = "file"
/// path = "register.log"
/// ```
#[derive(Debug, Clone)]
pub struct ServerToml {
    table: toml::Table,
}

impl Default for ServerToml {
    fn default() -> ServerToml {
        ServerToml::new()
    }
}

impl ServerToml {
    /// The starting configuration above.
    pub fn new() -> ServerToml {
        ServerToml { table: toml::Table::new() }
            .set("domain", "example.org")
            .table(
                "backuppc",
                [
                    ("conf-dir", "backuppc".into()),
                    ("url", "http://backup.example.org/?host={host}".into()),
                    ("key", "backuppc_key.pub".into()),
                    ("reload-command", toml::Value::Array(Vec::new())),
                ],
            )
            .table("directory", [("kind", "file".into()), ("path", "users.toml".into())])
            .table("resolver", [("kind", "static".into()), ("path", "hosts.static".into())])
            .table("log", [("kind", "file".into()), ("path", "register.log".into())])
    }

    /// Sets a top-level key (`auth`, `realm`, `admins`...).
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> ServerToml {
        self.table.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a key of `[backuppc]`.
    pub fn backuppc(self, key: &str, value: impl Into<toml::Value>) -> ServerToml {
        self.set_in("backuppc", key, value)
    }

    /// Sets `key` in the table `table`, creating the table if needed.
    pub fn set_in(mut self, table: &str, key: &str, value: impl Into<toml::Value>) -> ServerToml {
        let entry = self.table.entry(table.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else { panic!("`{table}` is not a table") };
        inner.insert(key.to_owned(), value.into());
        self
    }

    /// Replaces the table `name` (`[directory]`, `[resolver]`, `[log]`...)
    /// with exactly `entries`.
    pub fn table<K: Into<String>>(
        mut self,
        name: &str,
        entries: impl IntoIterator<Item = (K, toml::Value)>,
    ) -> ServerToml {
        let inner: toml::Table = entries.into_iter().map(|(key, value)| (key.into(), value)).collect();
        self.table.insert(name.to_owned(), toml::Value::Table(inner));
        self
    }

    /// Removes a key or a table.
    pub fn remove(mut self, key: &str) -> ServerToml {
        self.table.remove(key);
        self
    }

    /// The file's text.
    pub fn render(&self) -> String {
        toml::to_string(&self.table).unwrap()
    }

    /// Writes the file at `path`, readable by all (bpc-register may run as
    /// backuppc), and returns `path`.
    pub fn write(&self, path: &Path) -> std::path::PathBuf {
        fs::write(path, self.render()).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        path.to_owned()
    }
}

/// A TOML table from its entries.
pub fn table<const N: usize>(entries: [(&str, toml::Value); N]) -> toml::Table {
    entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

/// A path as a TOML string.
pub fn path(path: &Path) -> toml::Value {
    toml::Value::String(path.display().to_string())
}

/// A list of strings as a TOML array (`reload-command`, `admins`, `os`).
pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> toml::Value {
    toml::Value::Array(items.into_iter().map(|item| toml::Value::String(item.as_ref().to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_the_server_reads() {
        let text = ServerToml::new()
            .set("auth", "password")
            .backuppc("account", "bpcetest")
            .backuppc("reload-command", strings(["/bin/true", "reload"]))
            .table("log", [("kind", "stderr".into())])
            .render();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["auth"].as_str(), Some("password"));
        assert_eq!(parsed["domain"].as_str(), Some("example.org"));
        assert_eq!(parsed["backuppc"]["account"].as_str(), Some("bpcetest"));
        assert_eq!(parsed["backuppc"]["conf-dir"].as_str(), Some("backuppc"));
        assert_eq!(parsed["backuppc"]["reload-command"].as_array().map(Vec::len), Some(2));
        assert_eq!(parsed["log"].as_table().map(|t| t.keys().cloned().collect::<Vec<_>>()), Some(vec!["kind".into()]));
    }
}
