//! A child node process of a `harness = false` test file: the test binary started again
//! with `TROUPE_TEST_NODE` set, which prints `NODE <addr> <identifier>` once it listens.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A child process; killed (and reaped) when dropped.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary as a child node with `env`, and waits for its address.
pub(crate) fn start(env: &[(&str, String)]) -> (Process, SocketAddr) {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.env("TROUPE_TEST_NODE", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut process = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a child node");
    let stdout = process.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("NODE "))
        .expect("the child prints its address");
    let addr = line
        .split_whitespace()
        .nth(1)
        .expect("address")
        .parse()
        .expect("an address");
    (Process(process), addr)
}
