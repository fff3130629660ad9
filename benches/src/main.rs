//! Comparative benchmark: troupe vs raw tokio, actix, ractor and kameo.
//!
//! The driver runs every (framework, workload) pair in a fresh child process (itself,
//! re-executed with `--child FRAMEWORK WORKLOAD`), interleaves frameworks within each run,
//! and prints the medians as one markdown table. See `benches/README.md`.

mod common;
mod fw_actix;
mod fw_kameo;
mod fw_ractor;
mod fw_tokio;
#[cfg(feature = "troupe")]
mod fw_troupe;
mod subscriber;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RESULT_TAG: &str = "BENCH-RESULT";
const NA_TAG: &str = "BENCH-NA";

struct Args {
    runs: usize,
    frameworks: Vec<String>,
    workloads: Vec<String>,
    scale: f64,
    out: Option<String>,
    timeout: Duration,
    child: Option<(String, String)>,
}

fn usage() -> ! {
    eprintln!(
        "usage: troupe-benches [--runs N] [--frameworks LIST] [--workloads LIST] [--scale F] \
         [--out FILE] [--timeout SECS]\n\
         frameworks: {} (comma-separated; default: all but actix-2t)\n\
         workloads:  {} (comma-separated)",
        FRAMEWORKS.join(","),
        WORKLOADS.join(",")
    );
    std::process::exit(2)
}

fn parse_list(v: &str, allowed: &[&str]) -> Vec<String> {
    let items: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for i in &items {
        if !allowed.contains(&i.as_str()) {
            eprintln!("unknown name `{i}` (allowed: {})", allowed.join(","));
            usage();
        }
    }
    // Keep table order regardless of the order given.
    allowed
        .iter()
        .filter(|a| items.iter().any(|i| i == *a))
        .map(|s| s.to_string())
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        runs: 3,
        frameworks: DEFAULT_FRAMEWORKS.iter().map(|s| s.to_string()).collect(),
        workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
        scale: 1.0,
        out: None,
        timeout: Duration::from_secs(900),
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--runs" => a.runs = val().parse().unwrap_or_else(|_| usage()),
            "--frameworks" => a.frameworks = parse_list(&val(), FRAMEWORKS),
            "--workloads" => a.workloads = parse_list(&val(), WORKLOADS),
            "--scale" => a.scale = val().parse().unwrap_or_else(|_| usage()),
            "--out" => a.out = Some(val()),
            "--timeout" => a.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage())),
            "--child" => {
                let fw = val();
                let wl = val();
                a.child = Some((fw, wl));
            }
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument `{arg}`");
                usage()
            }
        }
    }
    if a.runs == 0 || !a.scale.is_finite() || a.scale <= 0.0 {
        usage();
    }
    a
}

fn troupe_built() -> bool {
    cfg!(feature = "troupe")
}

/// Child side: run one (framework, workload) pair and print one result line.
fn child(fw: &str, wl: &str, scale: f64) {
    subscriber::install_from_env();
    let p = Params::scaled(scale);
    let out = match fw {
        "tokio" => fw_tokio::run(wl, p),
        "actix" => fw_actix::run(wl, p),
        "actix-2t" => fw_actix::run_two_threads(wl, p),
        "ractor" => fw_ractor::run(wl, p),
        "kameo" => fw_kameo::run(wl, p),
        #[cfg(feature = "troupe")]
        "troupe" => fw_troupe::run(wl, p),
        #[cfg(not(feature = "troupe"))]
        "troupe" => Outcome::NotApplicable("not built"),
        _ => unreachable!(),
    };
    let line = match out {
        Outcome::Metrics(m) => {
            let kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{RESULT_TAG} {}", kv.join(" "))
        }
        Outcome::NotApplicable(text) => format!("{NA_TAG} {text}"),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
    // Skip tearing down a million agents: it measures nothing and takes seconds.
    std::process::exit(0);
}

#[derive(Debug, Clone)]
enum Sample {
    Metrics(BTreeMap<String, f64>),
    Na(String),
    Failed(String),
}

fn run_child(fw: &str, wl: &str, scale: f64, timeout: Duration) -> Sample {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = match Command::new(exe)
        .args(["--child", fw, wl, "--scale", &scale.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Sample::Failed(format!("spawn: {e}")),
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill(); // our own child, by handle
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Sample::Failed(format!("wait: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Sample::Failed(format!("timed out after {:?}", timeout));
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix(RESULT_TAG) {
            let mut m = BTreeMap::new();
            for kv in rest.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Ok(v) = v.parse::<f64>() {
                        m.insert(k.to_string(), v);
                    }
                }
            }
            return Sample::Metrics(m);
        }
        if let Some(rest) = line.strip_prefix(NA_TAG) {
            return Sample::Na(rest.trim().to_string());
        }
    }
    let tail: Vec<&str> = err
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Sample::Failed(format!("exit {status}; stderr: {}", tail.join(" | ")))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Thousands separators for integers.
fn group(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn fmt_metric(key: &str, v: f64) -> String {
    match key {
        "tell_mps" | "fanin_mps" | "tell_agents_mps" | "fanin_agents_mps" => {
            if v >= 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        }
        "restart_us" => format!("{v:.1}"),
        "chain_peak_mib" => format!("{v:.2}"),
        _ => group(v),
    }
}

/// Table columns: (header, workload, metric key).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("tell (agent->agent) M msg/s", "tell-agents", "tell_agents_mps"),
    ("fanin 8->1 (agents) M msg/s", "fanin-agents", "fanin_agents_mps"),
    ("ask (agent->agent) ns", "ask-agents", "ask_agents_ns"),
    (
        "pingpong (agent<->agent) ns/round trip",
        "pingpong",
        "pingpong_ns",
    ),
    ("tell (from the driver task) M msg/s", "tell", "tell_mps"),
    (
        "fanin 8->1 (from the driver's tasks) M msg/s",
        "fanin",
        "fanin_mps",
    ),
    ("ask (from the driver task) ns", "ask", "ask_ns"),
    ("spawn ns/agent", "spawn", "spawn_ns"),
    ("spawn + 1 call each ns/agent", "spawn", "spawn_call_ns"),
    ("RSS B/agent (worked, idle)", "spawn", "rss_worked_idle_b"),
    ("RSS B/agent (never messaged)", "spawn", "rss_b"),
    ("chain: spawn + 1 call + stop ns/agent", "chain", "chain_ns"),
    ("chain peak RSS MiB", "chain", "chain_peak_mib"),
    ("restart us", "restart", "restart_us"),
];

fn row_label(fw: &str) -> String {
    match fw {
        "tokio" => format!(
            "raw tokio {} (task + unbounded mpsc + oneshot)",
            env!("BENCH_VERSION_TOKIO")
        ),
        "actix" => format!(
            "actix {} (own System: one current-thread Arbiter)",
            env!("BENCH_VERSION_ACTIX")
        ),
        "actix-2t" => format!(
            "actix {}, agent on a 2nd Arbiter thread (opt-in)",
            env!("BENCH_VERSION_ACTIX")
        ),
        "ractor" => format!("ractor {} (unbounded)", env!("BENCH_VERSION_RACTOR")),
        "kameo" => format!("kameo {} (bounded 64)", env!("BENCH_VERSION_KAMEO")),
        "troupe" => {
            if troupe_built() {
                "troupe (default mailbox)".to_string()
            } else {
                "troupe (not built: feature `troupe` off)".to_string()
            }
        }
        _ => fw.to_string(),
    }
}

type Samples = BTreeMap<(String, String), Vec<Sample>>;

fn medians(samples: &Samples, fw: &str, wl: &str, key: &str) -> (Option<f64>, Option<String>) {
    let Some(list) = samples.get(&(fw.to_string(), wl.to_string())) else {
        return (None, None);
    };
    let mut vals: Vec<f64> = list
        .iter()
        .filter_map(|s| match s {
            Sample::Metrics(m) => m.get(key).copied(),
            _ => None,
        })
        .collect();
    let note = list.iter().find_map(|s| match s {
        Sample::Na(t) => Some(t.clone()),
        Sample::Failed(_) => Some("failed".to_string()),
        _ => None,
    });
    (median(&mut vals), note)
}

/// The troupe commit measured, and whether its sources had uncommitted changes.
fn troupe_rev() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |a: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&[
                "status",
                "--porcelain",
                "--",
                "src",
                "actor-core",
                "actor-macros",
                "Cargo.toml",
            ])
            .map(|s| !s.is_empty())
            .unwrap_or(false);
            if dirty {
                format!("troupe at {rev} plus uncommitted changes")
            } else {
                format!("troupe at {rev}")
            }
        }
        None => "troupe commit unknown".to_string(),
    }
}

fn render(args: &Args, samples: &Samples, cmdline: &str, wall: Duration) -> String {
    let mut s = String::new();
    let cols: Vec<&(&str, &str, &str)> = COLUMNS
        .iter()
        .filter(|(_, wl, _)| args.workloads.iter().any(|w| w == wl))
        .collect();
    s += &format!(
        "Medians of {} interleaved run(s), scale {}; each (framework, workload) pair in a fresh \
         process; tokio multi-thread runtime with 2 workers (actix: its own System, agents and \
         senders on its one Arbiter thread). {}; {}, {} cores. Wall time {:.0} s.\n\n",
        args.runs,
        args.scale,
        troupe_rev(),
        env!("BENCH_RUSTC"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        wall.as_secs_f64()
    );
    s += &format!("Command: `{cmdline}`\n\n");
    s += "| |";
    for (h, _, _) in &cols {
        s += &format!(" {h} |");
    }
    s += "\n|---|";
    for _ in &cols {
        s += "---|";
    }
    s += "\n";
    for fw in &args.frameworks {
        s += &format!("| {} |", row_label(fw));
        for (_, wl, key) in &cols {
            let cell = match medians(samples, fw, wl, key) {
                (Some(v), _) => fmt_metric(key, v),
                (None, Some(note)) => note,
                (None, None) => String::new(),
            };
            s += &format!(" {cell} |");
        }
        s += "\n";
    }
    s += "\n";
    s += &ratios(samples);
    s += "\n";
    s
}

/// A target: its text and whether a ratio troupe / peer meets it.
type Target<'a> = (&'a str, fn(f64) -> bool);

/// One comparison of troupe with a peer on one metric: the ratio troupe / peer, with the
/// verdict when there is a target.
struct Cmp<'a> {
    peer: &'a str,
    text: &'a str,
    ok: Option<Target<'a>>,
}

fn ratios(samples: &Samples) -> String {
    let get = |fw: &str, wl: &str, key: &str| medians(samples, fw, wl, key).0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    // "label: 1.62x actix (target >= 1.5x: met), 1.10x raw tokio (target >= 1x: met)"
    let row = |label: &str, wl: &str, key: &str, cmps: &[Cmp]| -> Option<String> {
        let t = get("troupe", wl, key)?;
        let parts: Vec<String> = cmps
            .iter()
            .filter_map(|c| {
                let r = t / get(c.peer, wl, key)?;
                Some(match c.ok {
                    Some((target, ok)) => format!("{r:.2}x {} (target {target}: {})", c.text, verdict(ok(r))),
                    None => format!("{r:.2}x {}", c.text),
                })
            })
            .collect();
        (!parts.is_empty()).then(|| format!("{label} {}", parts.join(", ")))
    };
    let c = |peer, text, ok| Cmp { peer, text, ok };

    let mut issue8 = Vec::new();
    for (label, wl, key) in [
        ("tell (agent->agent)", "tell-agents", "tell_agents_mps"),
        ("fanin (agents)", "fanin-agents", "fanin_agents_mps"),
    ] {
        issue8.extend(row(
            label,
            wl,
            key,
            &[
                c("actix", "actix", Some((">= 1.5x", |r| r >= 1.5))),
                c("tokio", "raw tokio", Some((">= 1x", |r| r >= 1.0))),
            ],
        ));
    }
    for (label, wl, key) in [
        ("ask (agent->agent)", "ask-agents", "ask_agents_ns"),
        ("pingpong", "pingpong", "pingpong_ns"),
    ] {
        issue8.extend(row(
            label,
            wl,
            key,
            &[
                c("actix", "actix's time", Some(("<= 1.3x", |r| r <= 1.3))),
                c("tokio", "raw tokio's", Some(("< 1x", |r| r < 1.0))),
            ],
        ));
    }
    issue8.extend(row(
        "chain",
        "chain",
        "chain_ns",
        &[
            c("actix", "actix's time per agent", Some(("<= 1x", |r| r <= 1.0))),
            c("tokio", "raw tokio's", None),
        ],
    ));
    issue8.extend(row(
        "chain peak RSS",
        "chain",
        "chain_peak_mib",
        &[
            c("actix", "actix's", Some(("<= 0.5x", |r| r <= 0.5))),
            c("tokio", "raw tokio's", None),
        ],
    ));
    if let Some(r) = get("troupe", "spawn", "rss_worked_idle_b") {
        issue8.push(format!(
            "RSS (worked, idle) {} B/agent (target <= 512 B: {})",
            group(r),
            verdict(r <= 512.0)
        ));
    }
    if let Some(r) = get("troupe", "restart", "restart_us") {
        issue8.push(format!(
            "restart {r:.1} us (target <= 5 us: {})",
            verdict(r <= 5.0)
        ));
    }

    let mut driver = Vec::new();
    driver.extend(row(
        "tell",
        "tell",
        "tell_mps",
        &[c("actix", "actix", Some((">= 2x", |r| r >= 2.0)))],
    ));
    driver.extend(row(
        "fanin",
        "fanin",
        "fanin_mps",
        &[c("actix", "actix", Some((">= 1.5x", |r| r >= 1.5)))],
    ));
    driver.extend(row(
        "ask",
        "ask",
        "ask_ns",
        &[
            c("actix", "actix's time", Some(("<= 1.5x", |r| r <= 1.5))),
            c("tokio", "raw tokio's", Some(("< 1x", |r| r < 1.0))),
        ],
    ));
    driver.extend(row(
        "spawn",
        "spawn",
        "spawn_ns",
        &[c("actix", "actix's time", Some(("<= 1x", |r| r <= 1.0)))],
    ));
    if let Some(r) = get("troupe", "spawn", "rss_b") {
        driver.push(format!(
            "RSS (never messaged) {} B/agent (target <= 512 B: {})",
            group(r),
            verdict(r <= 512.0)
        ));
    }

    let mut s = String::new();
    if !issue8.is_empty() {
        s += &format!("troupe against issue 8's targets: {}.\n\n", issue8.join("; "));
    }
    if !driver.is_empty() {
        s += &format!(
            "troupe, driver-task rows, against issues 2 and 3's targets: {}.\n",
            driver.join("; ")
        );
    }
    if s.is_empty() {
        s = "troupe vs its peers: not measured in this run.\n".to_string();
    }
    s
}

fn raw_section(args: &Args, samples: &Samples) -> String {
    let mut s = String::from(
        "<details><summary>Every run</summary>\n\n| framework | workload | runs |\n|---|---|---|\n",
    );
    for wl in &args.workloads {
        for fw in &args.frameworks {
            let Some(list) = samples.get(&(fw.clone(), wl.clone())) else {
                continue;
            };
            let cells: Vec<String> = list
                .iter()
                .map(|x| match x {
                    Sample::Metrics(m) => m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", fmt_metric(k, *v)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Sample::Na(t) => t.clone(),
                    Sample::Failed(e) => format!("failed: {e}"),
                })
                .collect();
            s += &format!("| {fw} | {wl} | {} |\n", cells.join(" / "));
        }
    }
    s += "\n</details>\n";
    s
}

fn main() {
    let args = parse_args();
    if let Some((fw, wl)) = &args.child {
        child(fw, wl, args.scale);
        return;
    }
    let cmdline = {
        let rest: Vec<String> = std::env::args().skip(1).collect();
        let feats = if cfg!(feature = "troupe-supervision") {
            " --features troupe-supervision"
        } else {
            ""
        };
        format!(
            "cargo run --release --manifest-path benches/Cargo.toml{feats} --{}{}",
            if rest.is_empty() { "" } else { " " },
            rest.join(" ")
        )
    };
    let t0 = Instant::now();
    let mut samples: Samples = BTreeMap::new();
    for run in 1..=args.runs {
        for wl in &args.workloads {
            for fw in &args.frameworks {
                let t = Instant::now();
                let sample = run_child(fw, wl, args.scale, args.timeout);
                let shown = match &sample {
                    Sample::Metrics(m) => m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", fmt_metric(k, *v)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Sample::Na(t) => t.clone(),
                    Sample::Failed(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "[run {run}/{}] {wl:<12} {fw:<8} {shown}  ({:.1} s)",
                    args.runs,
                    t.elapsed().as_secs_f64()
                );
                samples.entry((fw.clone(), wl.clone())).or_default().push(sample);
            }
        }
    }
    let table = render(&args, &samples, &cmdline, t0.elapsed());
    println!("{table}");
    if let Some(path) = &args.out {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let body = format!("{table}\n{}", raw_section(&args, &samples));
        std::fs::write(path, body).expect("write --out file");
        eprintln!("wrote {path}");
    }
}
