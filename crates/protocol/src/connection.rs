//! `SSH_CONNECTION`: who is asking, as sshd saw it.

use std::fmt;
use std::net::IpAddr;

/// Why `SSH_CONNECTION` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The variable is not set: the program was not started by sshd.
    #[error("SSH_CONNECTION is not set; bpc-register must be started by sshd as a forced command")]
    Missing,
    /// The variable is not `client_ip client_port server_ip server_port`.
    #[error("SSH_CONNECTION is not \"client_ip client_port server_ip server_port\"")]
    Malformed,
}

/// The four fields of `SSH_CONNECTION`, plus the text they came from, which
/// starts every error answer exactly as sshd wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConnection {
    /// The address the client connected from.
    pub client_ip: IpAddr,
    /// The client's source port.
    pub client_port: u16,
    /// The server address the client reached.
    pub server_ip: IpAddr,
    /// The server port the client reached.
    pub server_port: u16,
    text: String,
}

impl SshConnection {
    /// Parses the value of `SSH_CONNECTION`: four fields separated by single
    /// spaces, nothing else. The strictness matters because the text is echoed
    /// back to the client and into the log.
    pub fn parse(text: &str) -> Result<SshConnection, ConnectionError> {
        let fields: Vec<&str> = text.split(' ').collect();
        let [client_ip, client_port, server_ip, server_port] = fields.as_slice() else {
            return Err(ConnectionError::Malformed);
        };
        let ip = |field: &str| field.parse::<IpAddr>().map_err(|_| ConnectionError::Malformed);
        let port = |field: &str| {
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConnectionError::Malformed);
            }
            field.parse::<u16>().map_err(|_| ConnectionError::Malformed)
        };
        Ok(SshConnection {
            client_ip: ip(client_ip)?,
            client_port: port(client_port)?,
            server_ip: ip(server_ip)?,
            server_port: port(server_port)?,
            text: text.to_owned(),
        })
    }

    /// Builds the value sshd would set for these endpoints.
    pub fn new(client_ip: IpAddr, client_port: u16, server_ip: IpAddr, server_port: u16) -> SshConnection {
        let text = format!("{client_ip} {client_port} {server_ip} {server_port}");
        SshConnection { client_ip, client_port, server_ip, server_port, text }
    }

    /// The text of `SSH_CONNECTION`, as received.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for SshConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_four_fields_of_sshd() {
        let connection = SshConnection::parse("82.254.212.144 49631 134.158.240.3 22").unwrap();
        assert_eq!(connection.client_ip.to_string(), "82.254.212.144");
        assert_eq!(connection.client_port, 49631);
        assert_eq!(connection.server_port, 22);
        assert_eq!(connection.as_str(), "82.254.212.144 49631 134.158.240.3 22");
        let v6 = SshConnection::parse("2001:db8::7 50000 ::1 2222").unwrap();
        assert_eq!(v6.client_ip.to_string(), "2001:db8::7");
    }

    #[test]
    fn rejects_anything_else() {
        for text in [
            "",
            "127.0.0.1",
            "127.0.0.1 1 127.0.0.1",
            "127.0.0.1 1 127.0.0.1 22 x",
            "127.0.0.1  1 127.0.0.1 22",
            "127.0.0.1 +1 127.0.0.1 22",
            "127.0.0.1 70000 127.0.0.1 22",
            "host 1 127.0.0.1 22",
            "127.0.0.1 1 127.0.0.1 22\nsuccess",
            "127.0.0.1\t1 127.0.0.1 22",
        ] {
            assert_eq!(SshConnection::parse(text), Err(ConnectionError::Malformed), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_never_keeps_a_newline(text in any::<String>()) {
            if let Ok(connection) = SshConnection::parse(&text) {
                prop_assert!(!connection.as_str().contains(['\n', '\r', '\0']));
            }
        }

        #[test]
        fn rendered_connections_parse_back(a in any::<std::net::IpAddr>(), p in any::<u16>(), b in any::<std::net::IpAddr>(), q in any::<u16>()) {
            let built = SshConnection::new(a, p, b, q);
            prop_assert_eq!(SshConnection::parse(built.as_str()).unwrap(), built);
        }
    }
}
