//! The wire format shared by `bpc-enroll` and `bpc-register`.
//!
//! A registration is one request line (`OS:logon`, sent as the SSH command) and
//! one answer (`success` followed by `keyword: value` lines, or an error text
//! that starts with the value of `SSH_CONNECTION`); a status request
//! (`info:`) is answered the same way, with [`HostInfo`]'s keywords. This crate turns bytes into
//! checked values and values back into bytes; it never touches a file, a socket
//! or a process, so both sides can trust it with hostile input.

mod answer;
pub mod auth;
pub mod basic;
mod connection;
pub mod form;
pub mod hostkeys;
mod info;
mod names;
mod refusal;
mod request;
mod secret;
pub mod text;

pub use answer::{Answer, SuccessAnswer, parse_answer, render_error, render_success};
pub use connection::{ConnectionError, SshConnection};
pub use info::{HostInfo, InfoAnswerError, LastBackup, Registered, is_web_url};
pub use names::{AccountName, AddressList, Domain, HostName, Logon, NameError, OsName, is_address_list};
pub use refusal::Refusal;
pub use request::{
    ClientRequest, INFO, InfoRequest, MAX_REQUEST_LEN, Request, RequestError, parse_client_request, parse_request,
};
pub use secret::Secret;
