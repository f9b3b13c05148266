//! The OS credential store (Secret Service, Keychain, Credential Manager),
//! through keyring-core: where passwords go when one answers.

use protocol::Secret;

/// An OS credential store (Secret Service, Keychain, Credential Manager):
/// where passwords go when there is one, instead of the cache file.
pub trait PasswordStore {
    /// Stores `password` for `username` in `realm`.
    fn set(&self, realm: &str, username: &str, password: &Secret) -> Result<(), String>;
    /// The password for `username` in `realm`, if stored.
    fn get(&self, realm: &str, username: &str) -> Option<Secret>;
    /// Forgets it.
    fn delete(&self, realm: &str, username: &str);
}

/// The OS store through keyring-core's default store: one entry per realm
/// and user, under the service `bpc-enroll`.
#[derive(Debug, Default)]
pub struct KeyringStore;

impl KeyringStore {
    /// The system's store, when one answers here; `None` otherwise (no
    /// session bus, no Secret Service: the file keeps the password then).
    pub fn detect() -> Option<KeyringStore> {
        #[cfg(target_os = "linux")]
        {
            std::env::var_os("DBUS_SESSION_BUS_ADDRESS")?;
            let store = zbus_secret_service_keyring_store::Store::new().ok()?;
            keyring_core::set_default_store(store);
        }
        let probe = keyring_core::Entry::new("bpc-enroll", "probe").ok()?;
        match probe.get_password() {
            Ok(_) | Err(keyring_core::Error::NoEntry) => Some(KeyringStore),
            Err(_) => {
                keyring_core::unset_default_store();
                None
            }
        }
    }

    fn entry(realm: &str, username: &str) -> Option<keyring_core::Entry> {
        keyring_core::Entry::new(&format!("bpc-enroll {realm}"), username).ok()
    }
}

impl PasswordStore for KeyringStore {
    fn set(&self, realm: &str, username: &str, password: &Secret) -> Result<(), String> {
        let entry = KeyringStore::entry(realm, username).ok_or("no credential store")?;
        entry.set_password(password.expose()).map_err(|e| e.to_string())
    }

    fn get(&self, realm: &str, username: &str) -> Option<Secret> {
        KeyringStore::entry(realm, username)?.get_password().ok().map(Secret::new)
    }

    fn delete(&self, realm: &str, username: &str) {
        if let Some(entry) = KeyringStore::entry(realm, username) {
            let _ = entry.delete_credential();
        }
    }
}
