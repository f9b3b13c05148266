//! The server side of bpc-enroll: `bpc-register`'s logic.
//!
//! [`Server::handle`] takes one request (`SSH_ORIGINAL_COMMAND`) and the
//! connection it came on (`SSH_CONNECTION`), runs the checks of the contract
//! in order against a [`Directory`], a [`Resolver`] and a [`Registry`], and
//! returns the answer to send. The same function serves sshd's forced command
//! and the client's in-process `file://` transport.

pub mod admin;
pub mod authorized_keys;
pub mod backups;
pub mod bundle;
pub mod challenge;
pub mod check;
pub mod config;
pub mod directory;
pub mod dns;
pub mod file_index;
pub mod hostconfig;
pub mod hosts_mtime;
pub mod hosts_scan;
pub mod https;
pub mod install;
pub mod journal;
pub mod ldap;
pub mod log;
pub mod owner_edits;
pub mod pins;
pub mod register;
pub mod registry;
pub mod resolver;
pub mod root_folders;
pub mod shared_file;
pub mod transaction;

pub use config::{DEFAULT_CONFIG_PATH, ServerConfig};
pub use directory::{Directory, DirectoryError, FileDirectory};
pub use log::{EventLog, Level};
pub use register::{Response, Server, ServerError, Status};
pub use registry::{BackupPcRegistry, Registry, RegistryError};
pub use resolver::{ResolveError, Resolver, StaticResolver};
