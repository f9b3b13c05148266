//! The client side of bpc-enroll: `bpc-enroll setup` and, with the `file`
//! feature (the in-process server), `bpc-enroll demo`.
//!
//! [`setup::enroll`] sends the request over a [`Transport`], reads the answer
//! with `protocol`, and installs the server's key for the backup account.
//! Everything it installs can be put under a root folder, so that the whole
//! exchange runs without privileges.

pub mod config;
pub mod credentials;
#[cfg(feature = "file")]
pub mod demo;
pub mod hostkeys;
pub mod install;
pub mod launch;
pub mod manage;
pub mod manifest;
pub mod paths;
pub mod rsyncpath;
pub mod rsyncsend;
pub mod setup;
pub mod system;
pub mod transport;
pub mod trust;

pub use config::ClientConfig;
pub use install::Target;
pub use setup::{Enrollment, SetupError, SetupOptions, enroll, setup};
#[cfg(feature = "file")]
pub use transport::FileTransport;
pub use transport::{HttpsSettings, SshSettings, Transport, TransportError, transport_for, transport_with};

/// The OS part of `OS:logon` for the machine this runs on.
pub fn detected_os() -> &'static str {
    if cfg!(target_os = "macos") {
        "macos"
    } else if cfg!(target_os = "windows") {
        "windows"
    } else {
        "linux"
    }
}
