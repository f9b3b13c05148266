//! A program run on a terminal of its own, its prompts answered as a
//! person would: for the tests of bpc-enroll's password prompts.

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The prompts the client writes on the terminal: the password, and
/// Subversion's question about storing it unencrypted (and its repeat).
pub const PROMPTS: [&str; 3] = ["Password for", "Store password unencrypted (yes/no)? ", "Please type 'yes' or 'no': "];

/// Runs `command` on a new terminal of its own and answers each prompt
/// (see [`PROMPTS`]) with the next of `answers`; returns the exit code and
/// the screen.
pub fn on_terminal(command: Command, answers: &[&str]) -> (Option<i32>, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = |fd: &std::os::fd::OwnedFd| Stdio::from(fd.try_clone().unwrap());
    // setsid -c makes the terminal the command's controlling terminal (/dev/tty).
    let mut wrapped = Command::new("/usr/bin/setsid");
    wrapped.arg("-c").arg(command.get_program()).args(command.get_args());
    wrapped.env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    let mut child =
        wrapped.stdin(slave(&pty.slave)).stdout(slave(&pty.slave)).stderr(slave(&pty.slave)).spawn().unwrap();
    // The terminal reports its end only once no one else holds its slave side.
    drop(wrapped);
    drop(pty.slave);
    let mut master = fs::File::from(pty.master);
    let mut writer = master.try_clone().unwrap();
    let (sender, receiver) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = master.read(&mut buffer) {
            if n == 0 || sender.send(buffer.get(..n).unwrap_or_default().to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let mut answered = 0;
    loop {
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(bytes) => screen.push_str(&String::from_utf8_lossy(&bytes)),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("no progress on the terminal:\n{screen}");
            }
        }
        if PROMPTS.iter().map(|prompt| screen.matches(prompt).count()).sum::<usize>() > answered {
            let answer = answers.get(answered).unwrap_or_else(|| panic!("one prompt too many:\n{screen}"));
            writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
            answered += 1;
        }
    }
    (child.wait().unwrap().code(), screen)
}
