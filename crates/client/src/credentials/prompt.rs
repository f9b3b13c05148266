//! The terminal prompts: the password, and whether it may be stored
//! unencrypted. Both go to `/dev/tty`, and the server's realm is shown
//! only through `protocol::text::printable`.

use protocol::text::printable;
use std::fs;
use std::io::{self, BufRead, Write};

/// Whether there is a terminal to ask on.
pub(crate) fn has_terminal() -> bool {
    fs::File::open("/dev/tty").is_ok()
}

/// Asks for `username`'s password for `realm`, without echo.
pub(crate) fn ask_password(username: &str, realm: &str) -> io::Result<String> {
    rpassword::prompt_password(format!("Password for '{username}' at {}: ", printable(realm)))
}

/// Asks on the terminal, as Subversion does, whether the password may be
/// stored unencrypted; `None` when there is no terminal to ask on.
pub(crate) fn ask_plaintext(realm: &str) -> Option<bool> {
    let tty = fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    let mut out = tty.try_clone().ok()?;
    let mut input = io::BufReader::new(tty);
    let rule = "-".repeat(71);
    let shown = printable(realm);
    write!(
        out,
        "{rule}\nATTENTION!  Your password for authentication realm:\n\n   {shown}\n\n\
         can only be stored to disk unencrypted!  No system credential store\n\
         answered (under sudo the desktop's is out of reach).  You can avoid\n\
         this question by setting store-plaintext-passwords to \"yes\" or \"no\"\n\
         in client.toml or in your config.toml.\n{rule}\nStore password unencrypted (yes/no)? "
    )
    .ok()?;
    loop {
        out.flush().ok()?;
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            return Some(false);
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "yes" => return Some(true),
            "no" => return Some(false),
            _ => write!(out, "Please type 'yes' or 'no': ").ok()?,
        }
    }
}
