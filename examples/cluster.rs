//! Three nodes in three OS processes share work; killing one fires monitors on the others.
//!
//! Node a is the seed. Every node exports a `Worker` (`worker-a`, `worker-b`,
//! `worker-c`) that counts the words of a line. Node a finds the workers with
//! `node.find`, sends them lines round-robin, each job with a reference to a `Collector`
//! agent on node a, and the workers send their results back to it by cast. Then node c
//! dies: a `Watcher` on node a that monitors `worker-c` gets a `Down` with
//! `StopReason::NodeLost` at once, `members()` shrinks from 3 to 2 when the failure
//! detector declares node c down (a few seconds), and node a gives the remaining lines to
//! the two nodes left.
//!
//! All in one command (this process is node a; it starts nodes b and c as two child
//! processes, kills node c with SIGKILL halfway, and stops them all at the end):
//!
//! ```text
//! cargo run --example cluster
//! ```
//!
//! One node per terminal (start them in any order; b and c keep trying to join until a
//! answers):
//!
//! ```text
//! cargo run --example cluster -- --node a --listen 127.0.0.1:7101 --keys /tmp/troupe-cluster
//! cargo run --example cluster -- --node b --seed 127.0.0.1:7101 --keys /tmp/troupe-cluster
//! cargo run --example cluster -- --node c --seed 127.0.0.1:7101 --keys /tmp/troupe-cluster
//! ```
//!
//! Halfway, node a asks you to stop node c: press Ctrl-C in its terminal, which ends it at
//! once, without a goodbye, as a crash would. Nodes b and c run until Ctrl-C or the end
//! of their input (Ctrl-D, after which they leave the cluster politely); node a stops by
//! itself when the work is done.
//!
//! Keys: the cluster is exactly the three nodes a, b and c, and each trusts exactly their
//! three identifiers. To keep the example short, every node loads the three identity
//! files `a.key`, `b.key` and `c.key` of the `--keys` directory, creating whichever are
//! missing (creation is atomic, so nodes started together agree), then uses its own and
//! trusts all three. The directory is created with mode 0700 and must not be writable by
//! others. In a real deployment each machine holds only its own key and is given the
//! others' identifiers (`Identifier` parses from its text form). The all-in-one mode
//! creates the three keys in a fresh temporary directory and removes it at the end.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use troupe::prelude::*;
use troupe::secure::Node;

/// What the example returns on failure.
type Fallible<T> = Result<T, Box<dyn Error>>;

/// The work: one job per line.
const TEXT: [&str; 12] = [
    "An agent is a plain struct with a mailbox",
    "it handles one message at a time",
    "so its state needs no lock",
    "A node gives agents a place on the network",
    "every byte between nodes passes through a secure channel",
    "and only trusted identities get in",
    "When a node dies its links are lost at once",
    "monitors fire with the reason node lost",
    "and the failure detector soon agrees",
    "the cluster shrinks and the work goes on",
    "on the nodes that are left",
    "which is the whole point",
];

/// Lines given out before node c is stopped.
const BEFORE_THE_KILL: usize = 6;

// ANCHOR: worker
/// Counts the words of a line, on whichever node it runs, and sends the result to the
/// collector that came with the job. Exported on every node as `worker-<node>`.
#[derive(Debug)]
pub struct Worker {
    node: String,
}

#[agent(remote)]
impl Worker {
    /// One job. `reply_to` is a reference to an agent on the node that sent the job: it
    /// travels inside the message, and the result goes back to it by cast.
    #[handle]
    async fn count(&mut self, line: u32, text: String, reply_to: ActorRef<Collector>) {
        let words = text.split_whitespace().count() as u64;
        let done = reply_to.done(self.node.clone(), std::process::id(), line, words);
        if let Err(e) = done.cast().await {
            eprintln!(
                "node {}: could not send the result of line {line}: {e}",
                self.node
            );
        }
    }
}
// ANCHOR_END: worker

/// Receives the workers' results on node a.
#[derive(Debug, Default)]
pub struct Collector {
    /// Lines and words counted, by node.
    by_node: BTreeMap<String, (u32, u64)>,
    received: usize,
}

#[agent(remote)]
impl Collector {
    /// A worker's result.
    #[handle]
    fn done(&mut self, node: String, pid: u32, line: u32, words: u64) {
        println!("  node {node} (pid {pid}) counted {words} words in line {line}");
        let entry = self.by_node.entry(node).or_default();
        entry.0 += 1;
        entry.1 += words;
        self.received += 1;
    }

    /// How many results arrived so far.
    #[handle]
    fn received(&self) -> usize {
        self.received
    }

    /// Lines and words counted, by node.
    #[handle]
    fn summary(&self) -> Vec<(String, u32, u64)> {
        self.by_node
            .iter()
            .map(|(node, (lines, words))| (node.clone(), *lines, *words))
            .collect()
    }
}

// ANCHOR: watcher
/// A local agent on node a that monitors workers on other nodes.
#[derive(Debug, Default)]
pub struct Watcher {
    watched: HashMap<ActorId, String>,
    lost: Vec<(String, StopReason)>,
}

#[agent]
impl Watcher {
    /// Starts monitoring `worker` (on any node).
    #[handle]
    fn watch(&mut self, name: String, worker: ActorRef<Worker>, ctx: &mut Context<Self>) {
        ctx.monitor(&worker);
        self.watched.insert(worker.id(), name);
    }

    /// A monitored worker is gone: it stopped on its node, or (`StopReason::NodeLost`)
    /// the link to its node was lost.
    #[on_down]
    fn down(&mut self, down: Down) {
        let name = self
            .watched
            .remove(&down.id)
            .unwrap_or_else(|| down.id.to_string());
        println!(
            "  watcher on node a: got Down for {name}, reason: {} (StopReason::{:?})",
            down.reason, down.reason
        );
        self.lost.push((name, down.reason));
    }

    /// The workers lost so far, and why.
    #[handle]
    fn lost(&self) -> Vec<(String, StopReason)> {
        self.lost.clone()
    }
}
// ANCHOR_END: watcher

/// The three nodes' identities, loaded from (or created in) one directory.
struct Keys {
    dir: PathBuf,
    ids: Vec<Identifier>,
}

impl Keys {
    /// Loads `a.key`, `b.key` and `c.key` from `dir`, creating the directory (mode
    /// 0700) and whichever keys are missing.
    fn open(dir: &Path) -> Fallible<Keys> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cannot create the key directory {}: {e}", dir.display()))?;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            let path = dir.join(format!("{name}.key"));
            let identity = Identity::load_or_create(&path)
                .map_err(|e| format!("cannot load or create {}: {e}", path.display()))?;
            ids.push(identity.identifier());
        }
        Ok(Keys {
            dir: dir.to_owned(),
            ids,
        })
    }

    fn identity(&self, node: &str) -> Fallible<Identity> {
        let path = self.dir.join(format!("{node}.key"));
        Identity::load(&path).map_err(|e| format!("cannot load {}: {e}", path.display()).into())
    }
}

/// A fresh private directory for the all-in-one mode's keys; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Fallible<TempDir> {
        let dir = std::env::temp_dir().join(format!("troupe-cluster-example-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Nodes b and c as child processes of node a. Dropping this kills whichever are still
/// running, so none is left behind, whatever happens to node a.
struct Children(Vec<(String, Child)>);

impl Children {
    /// Starts this program again as node `name`, joining through `seed`.
    fn start(&mut self, name: &str, keys: &Path, seed: &str) -> Fallible<()> {
        let child = Command::new(std::env::current_exe()?)
            .args(["--node", name, "--seed", seed])
            .arg("--keys")
            .arg(keys)
            // The child stops when this pipe closes: when node a drops it, or dies.
            .stdin(Stdio::piped())
            .spawn()?;
        println!("  started node {name} as process {}", child.id());
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    /// Kills node `name` with SIGKILL: no goodbye, the operating system just closes its
    /// sockets.
    fn kill(&mut self, name: &str) -> Fallible<()> {
        let (_, child) = self
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("no child node {name}"))?;
        println!("  node a kills node {name} (process {}) with SIGKILL", child.id());
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Closes every child's input so it leaves the cluster and exits; kills those that
    /// have not exited within `grace`.
    fn stop(&mut self, grace: Duration) -> Fallible<()> {
        for (_, child) in &mut self.0 {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + grace;
        for (name, child) in &mut self.0 {
            loop {
                if let Some(status) = child.try_wait()? {
                    println!("  node {name} exited ({status})");
                    break;
                }
                if Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    println!("  node {name} did not exit in time and was killed");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

// ANCHOR: join
/// Starts node `name`: its own identity, trust in exactly the three nodes' identifiers,
/// and the seed to join the cluster through (none for the seed itself). Then exports
/// the node's worker, and returns it too.
async fn start_node(
    system: &System,
    keys: &Keys,
    name: &str,
    listen: &str,
    seed: Option<&str>,
) -> Fallible<(Node, ActorRef<Worker>)> {
    let node = Node::builder()
        .identity(keys.identity(name)?)
        .listen(listen)
        .trust(TrustPolicy::allow(keys.ids.clone()))
        .seeds(seed)
        // Any node the trust policy lets in may call any export.
        .default_policy(troupe::abac::Policy::parse("true")?)
        .start(system)
        .await?;
    let worker = system.spawn(Worker { node: name.into() });
    node.export(format!("worker-{name}"), &worker)?;
    Ok((node, worker))
}
// ANCHOR_END: join

/// Waits until `node` sees `n` members (itself included); says how long that took.
/// With `report`, says so each time the count changes.
async fn members_reach(node: &Node, n: usize, within: Duration, report: bool) -> Fallible<Duration> {
    let started = Instant::now();
    let mut last = 0;
    loop {
        let now = node.members().len();
        if now == n {
            return Ok(started.elapsed());
        }
        if now != last && report {
            println!("  node a sees {now} of the {n} nodes; waiting...");
        }
        last = now;
        if started.elapsed() > within {
            return Err(format!("node a sees {now} members, not {n}, after {within:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `node` sees fewer than `n` members; returns how many it sees then.
async fn members_below(node: &Node, n: usize, within: Duration) -> Fallible<usize> {
    let started = Instant::now();
    loop {
        let now = node.members().len();
        if now < n {
            return Ok(now);
        }
        if started.elapsed() > within {
            return Err(format!("node a still sees {now} members after {within:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finds `name` anywhere in the cluster, retrying a little: a node may be a member a
/// moment before it has exported its worker.
async fn find_worker(node: &Node, name: &str) -> Fallible<ActorRef<Worker>> {
    let started = Instant::now();
    loop {
        match node.find::<Worker>(name).await {
            Ok(worker) => return Ok(worker),
            Err(e) if started.elapsed() > Duration::from_secs(5) => {
                return Err(format!("cannot find {name}: {e}").into())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Gives `lines` to `workers` round-robin and waits for all their results.
async fn share(
    lines: std::ops::Range<usize>,
    workers: &[(String, ActorRef<Worker>)],
    collector: &ActorRef<Collector>,
) -> Fallible<()> {
    let expected = collector.received().await? + lines.len();
    let mut plan = vec![Vec::new(); workers.len()];
    for (i, line) in lines.enumerate() {
        plan[i % workers.len()].push(line);
    }
    for ((name, _), lines) in workers.iter().zip(&plan) {
        let numbers: Vec<String> = lines.iter().map(|line| (line + 1).to_string()).collect();
        println!("  {name} gets lines {}", numbers.join(", "));
    }
    for ((_, worker), lines) in workers.iter().zip(&plan) {
        for &line in lines {
            let number = u32::try_from(line + 1)?;
            worker
                .count(number, TEXT[line].to_owned(), collector.clone())
                .cast()
                .await?;
        }
    }
    let started = Instant::now();
    while collector.received().await? < expected {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the results did not all arrive within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Node a: the seed, and the one that hands out the work. With `children`, it has
/// started nodes b and c itself and kills node c halfway; without, it asks the user to.
async fn node_a(keys: &Keys, listen: &str, mut children: Option<&mut Children>) -> Fallible<()> {
    let system = System::new();
    let (node, worker_a) = start_node(&system, keys, "a", listen, None).await?;
    println!(
        "node a is {} at {}, exporting worker-a",
        node.identifier(),
        node.addr()
    );

    let patient = children.is_none();
    if let Some(children) = children.as_deref_mut() {
        println!("\nstep 1: start nodes b and c as child processes, joining through node a");
        let seed = node.addr().to_string();
        children.start("b", &keys.dir, &seed)?;
        children.start("c", &keys.dir, &seed)?;
    } else {
        println!("\nstep 1: wait for nodes b and c to join");
    }
    let within = if patient {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(15)
    };
    let took = members_reach(&node, 3, within, patient).await?;
    println!("  members() lists 3 nodes after {} ms", took.as_millis());

    println!("\nstep 2: find the workers");
    let workers = vec![
        ("worker-a".to_owned(), worker_a),
        ("worker-b".to_owned(), find_worker(&node, "worker-b").await?),
        ("worker-c".to_owned(), find_worker(&node, "worker-c").await?),
    ];
    println!("  worker-a is local; node.find found worker-b and worker-c on their nodes");
    let watcher = system.spawn(Watcher::default());
    watcher.watch("worker-c".into(), workers[2].1.clone()).await?;
    println!("  a watcher on node a monitors worker-c");

    println!("\nstep 3: share {BEFORE_THE_KILL} lines between the three nodes");
    let collector = system.spawn(Collector::default());
    share(0..BEFORE_THE_KILL, &workers, &collector).await?;

    println!("\nstep 4: node c dies");
    let killed = Instant::now();
    if let Some(children) = children.as_deref_mut() {
        children.kill("c")?;
    } else {
        println!("  press Ctrl-C in node c's terminal now");
    }
    let since = if patient {
        "node a asked to stop node c"
    } else {
        "node c died"
    };
    let within = if patient { 600 } else { 10 };
    while watcher.lost().await?.is_empty() {
        if killed.elapsed() > Duration::from_secs(within) {
            return Err(format!("worker-c's monitor did not fire within {within} s").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "  the monitor fired {} ms after {since}: the link to node c broke",
        killed.elapsed().as_millis()
    );
    let left = members_below(&node, 3, Duration::from_secs(15)).await?;
    println!(
        "  members() went from 3 to {left}, {:.1} s after {since}: the failure detector declared node c down",
        killed.elapsed().as_secs_f64()
    );

    println!(
        "\nstep 5: share the other {} lines between nodes a and b",
        TEXT.len() - BEFORE_THE_KILL
    );
    share(BEFORE_THE_KILL..TEXT.len(), &workers[..2], &collector).await?;

    println!("\nsummary:");
    let mut total = 0;
    for (name, lines, words) in collector.summary().await? {
        let note = if name == "c" { " before it died" } else { "" };
        println!("  node {name} counted {words} words in {lines} lines{note}");
        total += words;
    }
    println!("  {} lines, {total} words in all", TEXT.len());

    println!("\nshutting down");
    if let Some(children) = children {
        children.stop(Duration::from_secs(5))?;
    }
    node.shutdown().await;
    system.shutdown().await;
    println!("  node a stopped");
    Ok(())
}

/// Node b or c: joins, exports its worker, and runs until its input ends (the all-in-one
/// mode's node a closes it; in a terminal, Ctrl-D) or it is killed (Ctrl-C, SIGKILL).
async fn member(keys: &Keys, name: &str, listen: &str, seed: &str) -> Fallible<()> {
    let system = System::new();
    let (node, _worker) = start_node(&system, keys, name, listen, Some(seed)).await?;
    println!(
        "  node {name} (pid {}) is at {}, exporting worker-{name}, joining through {seed}",
        std::process::id(),
        node.addr()
    );
    let (tx, input_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut sink = std::io::sink();
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
        let _ = tx.send(());
    });
    let _ = input_closed.await;
    println!("  node {name}: input closed, leaving the cluster");
    node.shutdown().await;
    system.shutdown().await;
    Ok(())
}

/// The command line: `--node`, `--listen`, `--seed`, `--keys`.
#[derive(Debug, Default)]
struct Args {
    node: Option<String>,
    listen: Option<String>,
    seed: Option<String>,
    keys: Option<PathBuf>,
}

const USAGE: &str = "usage: cluster                    (all three nodes, from this process)
       cluster --node a [--listen ADDR] --keys DIR
       cluster --node b|c --seed ADDR [--listen ADDR] --keys DIR";

impl Args {
    fn parse() -> Fallible<Args> {
        let mut args = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let slot = match flag.as_str() {
                "--node" => &mut args.node,
                "--listen" => &mut args.listen,
                "--seed" => &mut args.seed,
                "--keys" => {
                    let dir = it.next().ok_or(format!("--keys needs a value\n{USAGE}"))?;
                    args.keys = Some(dir.into());
                    continue;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
            };
            *slot = Some(it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?);
        }
        Ok(args)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Every child process and temporary file is cleaned up inside `run`, by drop guards,
    // whether it succeeds or fails.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Fallible<()> {
    let args = Args::parse()?;
    match (args.node.as_deref(), args.keys, args.seed) {
        (None, None, None) if args.listen.is_none() => {
            println!("all three nodes from one command; this process is node a, the seed");
            let dir = TempDir::new()?;
            let keys = Keys::open(&dir.0)?;
            println!("  three identity keys in {}", dir.0.display());
            let mut children = Children(Vec::new());
            node_a(&keys, "127.0.0.1:0", Some(&mut children)).await?;
            println!("done");
            Ok(())
        }
        (Some("a"), Some(dir), None) => {
            let keys = Keys::open(&dir)?;
            let listen = args.listen.as_deref().unwrap_or("127.0.0.1:7101");
            node_a(&keys, listen, None).await?;
            println!("done");
            Ok(())
        }
        (Some(name @ ("b" | "c")), Some(dir), Some(seed)) => {
            let keys = Keys::open(&dir)?;
            let listen = args.listen.as_deref().unwrap_or("127.0.0.1:0");
            member(&keys, name, listen, &seed).await
        }
        _ => Err(USAGE.into()),
    }
}
