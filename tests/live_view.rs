//! The live view in a real browser: `examples/observe.rs` runs as a user would start it,
//! and Debian's headless Chromium loads its page and checks the tree, the nodes and a
//! number that updates live (`tests/browser/live_view.mjs`), and keeps a screenshot for
//! the book (`book/src/images/live-view.png`).
//!
//! Chromium and playwright-core are installed by `.ci/browser` when absent; if that
//! fails, this test fails and says why (it never skips).

#![cfg(feature = "web")]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long the example runs; the browser's checks take well under half of it.
const EXAMPLE_SECONDS: &str = "40";

#[test]
fn chromium_shows_the_tree_and_live_numbers_of_the_observe_example() {
    // 1. The browser and its driver (idempotent; serialized by a lock in the script).
    let install = Command::new("bash")
        .arg(Path::new(ROOT).join(".ci/browser"))
        .current_dir(ROOT)
        .output()
        .expect("bash runs .ci/browser");
    assert!(
        install.status.success(),
        "installing the browser failed ({}); the live view cannot be tested without it:\n{}{}",
        install.status,
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );

    // 2. The example, until it prints its page's address. With every feature, as CI's
    // `cargo test --all-features` built it already (other features would rebuild).
    let mut example = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--all-features", "--example", "observe", "--"])
        .args(["--seconds", EXAMPLE_SECONDS])
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let stdout = example.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut said = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("live view: ") {
                    break url.to_owned();
                }
                said.push(line);
            }
            Err(_) => {
                let _ = example.kill();
                panic!(
                    "the example printed no `live view: URL` line; it said:\n{}",
                    said.join("\n")
                );
            }
        }
    };
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the live view is bound to loopback by default: {url}"
    );

    // Prometheus's view: the metrics URL the example printed serves troupe's counters.
    let metrics = said
        .iter()
        .find_map(|l| l.strip_prefix("metrics: "))
        .unwrap_or_else(|| {
            panic!(
                "the example printed no `metrics: URL` line; it said:\n{}",
                said.join("\n")
            )
        })
        .to_owned();
    let scraped = scrape(&metrics, "troupe_messages_handled_total");
    assert!(
        scraped.contains("troupe_messages_handled_total"),
        "the metrics endpoint serves troupe's counters; it said:\n{scraped}"
    );

    // 3. The browser's checks.
    let screenshot = Path::new(ROOT).join("book/src/images/live-view.png");
    std::fs::create_dir_all(screenshot.parent().expect("a folder")).expect("the images folder");
    let playwright = Path::new(ROOT).join("target/browser/node/node_modules/playwright-core");
    let mut browser = Command::new("node")
        .arg(Path::new(ROOT).join("tests/browser/live_view.mjs"))
        .arg(&url)
        .arg(&screenshot)
        .env("PLAYWRIGHT_CORE", &playwright)
        .current_dir(ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let (mut out, mut err) = (String::new(), String::new());
    let mut b_out = browser.stdout.take().expect("stdout");
    let mut b_err = browser.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let _ = b_err.read_to_string(&mut err);
        err
    });
    let _ = b_out.read_to_string(&mut out);
    let err = err_reader.join().unwrap_or_default();
    let status = browser.wait().expect("node exits");
    assert!(
        status.success(),
        "the browser's checks failed ({status}):\n{out}\n{err}"
    );
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line from the browser script:\n{out}\n{err}"));
    let result: serde_json::Value = serde_json::from_str(result).expect("the RESULT line is JSON");
    assert_eq!(result["tree"], true);
    assert_eq!(result["outside"], 0, "the page loads nothing from outside");
    let updates = result["updates"].as_array().expect("two readings");
    assert!(
        updates[1].as_u64() > updates[0].as_u64(),
        "the update counter advanced: {updates:?}"
    );
    assert_ne!(result["total"][0], result["total"][1], "the live number changed");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "the screenshot is a real PNG"
    );

    // 4. The example ends by itself, cleanly, with its live view open until the end.
    let finished = Instant::now() + Duration::from_secs(90);
    let mut rest = Vec::new();
    let status = loop {
        while let Ok(line) = lines.try_recv() {
            rest.push(line);
        }
        if let Some(status) = example.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > finished {
            let _ = example.kill();
            panic!(
                "the example did not stop by itself; it said:\n{}",
                rest.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    rest.extend(lines.try_iter());
    assert!(
        status.success(),
        "the example failed ({status}):\n{}",
        rest.join("\n")
    );
    assert!(
        rest.iter().any(|l| l.starts_with("done: ")),
        "the example did not finish its shutdown:\n{}",
        rest.join("\n")
    );
}

/// `GET` of an `http://host:port/path` URL over a plain socket; the response, head and
/// body, once it holds `wanted` (the example publishes every second, and its first
/// publication may come before any message was handled), or after 15 s.
fn scrape(url: &str, wanted: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut body = String::new();
        if let Ok(mut tcp) = std::net::TcpStream::connect(host) {
            let _ = write!(tcp, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
            let _ = tcp.read_to_string(&mut body);
        }
        if body.contains(wanted) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
