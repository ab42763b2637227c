//! Running a command with bytes on its standard input, for the test crates
//! that drive the binary without the server harness in `common`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `command` with `input` on stdin; returns what it printed.
pub fn with_stdin(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
