//! The reasons a server gives for refusing a registration, with their exact texts.

use std::fmt;

/// Why `bpc-register` refused a request. The texts are part of the contract:
/// clients, documentation and administrators' scripts match on them, so they
/// are kept byte for byte as the original service wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The command is not `OS:logon`, or names an OS the server does not accept.
    OstypeUnknown,
    /// The logon is not a user of the directory.
    BadUserRequest,
    /// The client's address has no acceptable DNS name.
    InvalidDnsName,
    /// The host is already registered to somebody else.
    ReRegisterRefused,
    /// The host line could not be added to BackupPC's `hosts` file.
    CouldNotRegister,
    /// The per-host configuration file could not be written.
    CouldNotGenerateConfig,
    /// The server asks for a password and the client speaks protocol 1.
    AuthenticationRequired,
    /// No answer to the challenge was right (unknown user and wrong password
    /// alike, so that the challenge cannot be used to list users).
    AuthenticationFailed,
}

impl Refusal {
    /// The exact text sent to the client after the `SSH_CONNECTION` prefix.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::OstypeUnknown => "ostype is unknown",
            Refusal::BadUserRequest => "bad user request",
            Refusal::InvalidDnsName => "invalid DNS name for this IP",
            Refusal::ReRegisterRefused => "refusing to re-register client host with username",
            Refusal::CouldNotRegister => "Could not register",
            Refusal::CouldNotGenerateConfig => "could not generate config file.",
            Refusal::AuthenticationRequired => {
                "authentication required: this server asks for a password, upgrade the client"
            }
            Refusal::AuthenticationFailed => "authentication failed",
        }
    }

    /// Whether the refusal is the server's fault (logged at `err`) rather than
    /// the client's mistake (logged at `notice`).
    pub fn is_server_fault(self) -> bool {
        matches!(self, Refusal::CouldNotRegister | Refusal::CouldNotGenerateConfig)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}
