//! File handling that both sides need and must get right the same way:
//! atomic replacement with the final mode set at creation, and TOML files
//! whose errors name the file, the line and the key.

mod atomic;
mod tomlfile;

pub use atomic::{AtomicWrite, write_atomic};
pub use tomlfile::{TomlError, load_toml, parse_toml};
