//! File handling that both sides need and must get right the same way:
//! atomic replacement with the final mode set at creation, files read only
//! as the regular files they should be, TOML files whose
//! errors name the file, the line and the key, and reads from a peer that
//! are bounded in time.

mod atomic;
pub mod deadline;
mod regular;
mod tomlfile;

pub use atomic::{AtomicWrite, parent_dir, write_atomic};
pub use deadline::DeadlineReader;
pub use regular::{open_regular, read_regular, read_regular_through_links};
pub use tomlfile::{TomlError, load_toml, parse_toml};
