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
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let target = var("TARGET");
    // The compiler that links for the target: the linker rustc was given,
    // else the target's C compiler, else (building for this machine only)
    // `CC` or `cc`. A command line such as `ccache gcc` is split on spaces.
    let for_target = [
        "RUSTC_LINKER".to_owned(),
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".into(),
    ];
    for name in for_target.iter().map(String::as_str).chain(["CC"]) {
        println!("cargo:rerun-if-env-changed={name}");
    }
    let static_crt = var("CARGO_CFG_TARGET_FEATURE").split(',').any(|feature| feature == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    let compiler = match for_target.iter().map(|name| var(name)).find(|value| !value.is_empty()) {
        Some(compiler) => compiler,
        None if target == var("HOST") => match var("CC") {
            cc if cc.is_empty() => "cc".to_owned(),
            cc => cc,
        },
        None => {
            println!("cargo:warning=no C compiler named for {target}: the program loads libgcc_s.so.1");
            return;
        }
    };
    let mut words = compiler.split_whitespace();
    let archive = words
        .next()
        .and_then(|program| Command::new(program).args(words).arg("-print-file-name=libgcc_eh.a").output().ok())
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        // GCC prints the bare name back when it has no such file.
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
