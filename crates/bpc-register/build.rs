//! Links GCC's unwinder (`libgcc_eh.a`) into the program, so that it does
//! not load `libgcc_s.so.1` at every start.
//!
//! `bpc-register` is sshd's forced command: a process starts for every
//! request. Rust's standard library needs an unwinder and, on glibc, names
//! `libgcc_s` for it; each shared library costs the dynamic loader a
//! mapping, its relocations and, for this one, its own probe of the CPU at
//! start. The same unwinder taken from the static archive that GCC ships
//! beside it (what `gcc -static-libgcc` does) leaves glibc alone as a
//! shared dependency. When no C compiler names the archive, the program
//! links as usual and the build says so.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE").split(',').any(|feature| feature == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // GCC prints the bare name back when it has no such file.
    let archive = Command::new(&compiler)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|path| path.is_absolute() && path.is_file());
    match archive.as_deref().and_then(|path| path.parent()) {
        Some(folder) => {
            println!("cargo:rustc-link-search=native={}", folder.display());
            // Whole, so that its definitions come before the standard
            // library's `-lgcc_s`, which `--as-needed` then leaves out.
            println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
        }
        None => println!("cargo:warning={compiler} names no libgcc_eh.a: the program loads libgcc_s.so.1"),
    }
}
