//! A cluster of nodes as separate OS processes on 127.0.0.1: joining through a seed,
//! `find`, a node killed with SIGKILL or hung with SIGSTOP declared down, a restarted
//! node rejoining, and 20 nodes converging.
//!
//! This file has its own `main` (`harness = false`): run as a test it is the parent and
//! starts copies of itself as child nodes (`TROUPE_CLUSTER_NODE=1`). Every node's
//! identity is a key file the parent creates first, so that all of them can trust exactly
//! the others.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

#[path = "support/process_tests.rs"]
mod process_tests;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use troupe::prelude::*;
use troupe::secure::{Node, NodeError, TrustPolicy};

#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.count
    }
}

/// Keeps references to counters by name; calls them and hands them on.
#[derive(Default)]
pub struct Directory {
    entries: std::collections::HashMap<String, ActorRef<Counter>>,
}

#[agent(remote)]
impl Directory {
    #[handle]
    fn put(&mut self, name: String, counter: ActorRef<Counter>) {
        self.entries.insert(name, counter);
    }
    #[handle]
    fn get(&self, name: String) -> Option<ActorRef<Counter>> {
        self.entries.get(&name).cloned()
    }
    /// Calls the counter kept as `name`, from this node.
    #[handle]
    async fn bump(&self, name: String, n: u64) -> Result<u64, String> {
        let counter = self.entries.get(&name).cloned().ok_or("no such entry")?;
        counter.add(n).await.map_err(|e| e.to_string())
    }
    /// Hands the counter kept as `name` to another directory (on another node).
    #[handle]
    async fn forward(&self, name: String, to: ActorRef<Directory>) -> Result<(), String> {
        let counter = self.entries.get(&name).cloned().ok_or("no such entry")?;
        to.put(name, counter).await.map_err(|e| e.to_string())
    }
}

/// Another agent type, for finds of the wrong protocol.
#[derive(Default)]
pub struct Other;

#[agent(remote)]
impl Other {
    #[handle]
    fn add(&mut self, n: u32) -> u32 {
        n
    }
}

/// A local agent that watches remote ones.
#[derive(Default)]
pub struct Watcher {
    downs: Vec<StopReason>,
}

#[agent]
impl Watcher {
    #[handle]
    fn watch(&mut self, target: ActorRef<Counter>, ctx: &mut Context<Self>) {
        ctx.monitor(&target);
    }
    #[handle]
    fn downs(&self) -> Vec<StopReason> {
        self.downs.clone()
    }
    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.push(down.reason);
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The child: a node that trusts the cluster's keys, joins through the seeds, exports a
/// `Counter` as `TROUPE_NAME`, and reports on stdout what it sees.
async fn child() {
    if std::env::var_os("TROUPE_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let identity = Identity::load_or_create(env("TROUPE_KEY")).expect("identity");
    let trusted: Vec<Identifier> = env("TROUPE_TRUST")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("an identifier"))
        .collect();
    let seeds: Vec<String> = env("TROUPE_SEEDS")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expect: usize = env("TROUPE_EXPECT").parse().expect("TROUPE_EXPECT");
    let system = System::new();
    let node = Node::builder()
        .identity(identity)
        .trust(TrustPolicy::allow(trusted))
        .seeds(seeds)
        .default_policy(troupe::abac::Policy::parse("true").expect("policy"))
        .start(&system)
        .await
        .expect("node starts");
    let counter = system.spawn(Counter::default());
    node.export(env("TROUPE_NAME"), &counter).expect("export");
    let group = env("TROUPE_GROUP");
    if !group.is_empty() {
        node.join_group(group.clone(), &counter).expect("join");
        let node = node.clone();
        tokio::spawn(async move {
            // Says when it sees the whole group (the parent's member too).
            while node.group_members::<Counter>(&group).len() < env("TROUPE_EXPECT").parse().unwrap_or(3) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("GROUP {}", node.group_members::<Counter>(&group).len());
        });
    }
    let directory = env("TROUPE_NAME").replace("counter", "dir");
    node.export(directory, &system.spawn(Directory::default()))
        .expect("export");
    println!("NODE {} {}", node.addr(), node.identifier());
    let started = Instant::now();
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    });
    let watch = {
        let node = node.clone();
        async move {
            let mut last = 0;
            let mut converged = false;
            loop {
                let n = node.members().len();
                if n != last {
                    println!("MEMBERS {n}");
                    last = n;
                }
                if n >= expect && !converged {
                    converged = true;
                    println!("CONVERGED {}", started.elapsed().as_millis());
                    let find = env("TROUPE_FIND");
                    if !find.is_empty() {
                        match node.find::<Counter>(&find).await {
                            Ok(counter) => match counter.add(1).await {
                                Ok(_) => println!("FIND ok {find}"),
                                Err(e) => println!("FIND failed: call: {e}"),
                            },
                            Err(e) => println!("FIND failed: {e}"),
                        }
                    }
                    if !env("TROUPE_TRAFFIC").is_empty() {
                        // Membership traffic at rest: once the news of the joins has
                        // been passed on, over 5 s.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let (p0, b0) = node.membership_traffic();
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let (p1, b1) = node.membership_traffic();
                        println!(
                            "TRAFFIC {:.1} {:.0}",
                            (p1 - p0) as f64 / 5.0,
                            (b1 - b0) as f64 / 5.0
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::select! {
        _ = stdin_closed => {}
        () = watch => {}
    }
    node.shutdown().await;
}

/// The keys of a cluster's nodes, in a temporary directory.
struct Keys {
    dir: PathBuf,
    ids: Vec<Identifier>,
}

impl Keys {
    fn new(n: usize) -> Keys {
        let dir = std::env::temp_dir().join(format!("troupe-cluster-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("key directory");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let ids = (0..n)
            .map(|i| {
                Identity::load_or_create(dir.join(format!("{i}.key")))
                    .expect("a key")
                    .identifier()
            })
            .collect();
        Keys { dir, ids }
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{i}.key"))
    }

    fn trust(&self) -> String {
        self.ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child node process; killed when dropped. Its stdout lines arrive on `lines`.
struct ChildNode {
    process: Child,
    _stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

struct Spec<'a> {
    key: &'a Path,
    trust: String,
    seeds: String,
    name: String,
    expect: usize,
    find: String,
    traffic: bool,
    group: String,
}

impl ChildNode {
    fn start(spec: &Spec<'_>) -> ChildNode {
        let mut process = Command::new(std::env::current_exe().expect("own path"))
            .env("TROUPE_CLUSTER_NODE", "1")
            .env("TROUPE_KEY", spec.key)
            .env("TROUPE_TRUST", &spec.trust)
            .env("TROUPE_SEEDS", &spec.seeds)
            .env("TROUPE_NAME", &spec.name)
            .env("TROUPE_EXPECT", spec.expect.to_string())
            .env("TROUPE_FIND", &spec.find)
            .env("TROUPE_TRAFFIC", if spec.traffic { "1" } else { "" })
            .env("TROUPE_GROUP", &spec.group)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a child node");
        let stdout = process.stdout.take().expect("stdout");
        let stdin = process.stdin.take().expect("stdin");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildNode {
            process,
            _stdin: stdin,
            lines,
        }
    }

    /// Waits for a line starting with `prefix`; returns the rest of it.
    fn expect(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line[prefix.len()..].trim().to_owned(),
                Ok(line) => seen.push(line),
                Err(e) => {
                    panic!("no `{prefix}` line from the child within {within:?} ({e}); it said {seen:?}")
                }
            }
        }
    }

    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.process.id().to_string())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        // A stopped child must run again to die.
        self.signal("CONT");
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The parent's node: key 0, the cluster's seed.
async fn seed_node(system: &System, keys: &Keys) -> Node {
    Node::builder()
        .identity(Identity::load_or_create(keys.path(0)).expect("identity"))
        .trust(TrustPolicy::allow(keys.ids.clone()))
        .default_policy(troupe::abac::Policy::parse("true").expect("policy"))
        .start(system)
        .await
        .expect("node starts")
}

/// Polls `node.members()` until it has `n` entries; returns how long that took.
async fn members_reach(node: &Node, n: usize, within: Duration) -> Duration {
    let started = Instant::now();
    while node.members().len() != n {
        assert!(
            started.elapsed() < within,
            "the node sees {} members, not {n}, after {within:?}",
            node.members().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn spec<'a>(keys: &'a Keys, i: usize, seed: &Node, expect: usize) -> Spec<'a> {
    Spec {
        key: Box::leak(keys.path(i).into_boxed_path()),
        trust: keys.trust(),
        seeds: seed.addr().to_string(),
        name: format!("counter-{i}"),
        expect,
        find: String::new(),
        traffic: false,
        group: String::new(),
    }
}

async fn nodes_join_through_a_seed_and_find_each_others_agents() {
    let keys = Keys::new(3);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    seed.export("counter-0", &system.spawn(Counter::default()))
        .expect("export");
    let children: Vec<_> = (1..3)
        .map(|i| {
            ChildNode::start(&Spec {
                find: "counter-0".into(),
                ..spec(&keys, i, &seed, 3)
            })
        })
        .collect();
    let took = members_reach(&seed, 3, Duration::from_secs(10)).await;
    println!("    3 nodes see each other after {took:?}");
    for child in &children {
        child.expect("CONVERGED", Duration::from_secs(10));
        assert_eq!(child.expect("FIND", Duration::from_secs(10)), "ok counter-0");
    }
    let mut ids: Vec<_> = seed.members().into_iter().map(|m| m.identifier).collect();
    ids.sort();
    let mut expected = keys.ids.clone();
    expected.sort();
    assert_eq!(ids, expected, "members() lists the three nodes");
    // `find` looks anywhere in the cluster, and says clearly what is wrong.
    let counter = seed.find::<Counter>("counter-2").await.expect("find");
    assert_eq!(counter.add(5).await, Ok(5));
    assert!(matches!(
        seed.find::<Other>("counter-1").await,
        Err(NodeError::WrongProtocol { .. })
    ));
    assert!(matches!(
        seed.find::<Counter>("nowhere").await,
        Err(NodeError::NoSuchExport(_))
    ));
    seed.shutdown().await;
}

async fn references_travel_in_messages_and_replies_across_three_nodes() {
    let keys = Keys::new(3);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    let _children: Vec<_> = (1..3)
        .map(|i| ChildNode::start(&spec(&keys, i, &seed, 3)))
        .collect();
    members_reach(&seed, 3, Duration::from_secs(10)).await;
    let dir1 = seed.find::<Directory>("dir-1").await.expect("find");
    let dir2 = seed.find::<Directory>("dir-2").await.expect("find");

    // A reference to a local agent, sent to another node, works there...
    let mine = system.spawn(Counter::default());
    dir1.put("mine".into(), mine.clone()).await.expect("call");
    assert_eq!(dir1.bump("mine".into(), 5).await, Ok(Ok(5)));
    assert_eq!(mine.add(0).await, Ok(5), "the call reached the local agent");
    // ...comes back in a reply as the local reference it was...
    let back = dir1.get("mine".into()).await.expect("call").expect("kept");
    assert!(!back.is_remote());
    assert_eq!(back, mine);
    // ...and works on a third node that got it from the second.
    dir1.forward("mine".into(), dir2.clone())
        .await
        .expect("call")
        .expect("forwarded");
    assert_eq!(dir2.bump("mine".into(), 1).await, Ok(Ok(6)));

    // A reference to an agent on a third node, handed over by this one.
    let theirs = seed.find::<Counter>("counter-2").await.expect("find");
    dir1.put("theirs".into(), theirs.clone()).await.expect("call");
    assert_eq!(dir1.bump("theirs".into(), 7).await, Ok(Ok(7)));
    let again = dir1.get("theirs".into()).await.expect("call").expect("kept");
    assert!(again.is_remote());
    assert_eq!(again, theirs, "one agent, one id, however its reference came");
    assert_eq!(again.add(1).await, Ok(8));

    // Outside of a message to another node, a reference does not serialize.
    assert!(rmp_serde::to_vec(&mine).is_err());
    seed.shutdown().await;
}

async fn groups_span_the_cluster_and_lose_the_members_of_a_lost_node() {
    let keys = Keys::new(3);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    let mine = system.spawn(Counter::default());
    seed.join_group("workers", &mine).expect("join");
    let children: Vec<_> = (1..3)
        .map(|i| {
            ChildNode::start(&Spec {
                group: "workers".into(),
                ..spec(&keys, i, &seed, 3)
            })
        })
        .collect();
    members_reach(&seed, 3, Duration::from_secs(10)).await;
    // Joins on the other nodes become visible here.
    let started = Instant::now();
    let mut workers = seed.group_members::<Counter>("workers");
    while workers.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} members",
            workers.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        workers = seed.group_members::<Counter>("workers");
    }
    println!(
        "    a group of 3 members on 3 nodes after {:?}",
        started.elapsed()
    );
    assert_eq!(workers[0], mine, "this node's members first");
    for w in &workers {
        assert_eq!(w.add(1).await, Ok(1), "every member answers");
    }
    // ...and this node's join is visible there: each child sees 3 members.
    for child in &children {
        assert_eq!(child.expect("GROUP", Duration::from_secs(10)), "3");
    }
    // Members on a lost node leave the group.
    let mut children = children;
    let victim = children.pop().expect("a child");
    let killed = Instant::now();
    drop(victim);
    while seed.group_members::<Counter>("workers").len() != 2 {
        assert!(killed.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("    the lost node's member left after {:?}", killed.elapsed());
    // A member that leaves is gone from the group.
    seed.leave_group("workers", &mine);
    assert_eq!(seed.group_members::<Counter>("workers").len(), 1);
    seed.shutdown().await;
}

async fn a_killed_node_is_declared_down_and_rejoins_when_restarted() {
    let keys = Keys::new(3);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    let other = ChildNode::start(&spec(&keys, 1, &seed, 3));
    let mut victim = ChildNode::start(&spec(&keys, 2, &seed, 3));
    members_reach(&seed, 3, Duration::from_secs(10)).await;
    other.expect("CONVERGED", Duration::from_secs(10));
    let counter = seed.find::<Counter>("counter-2").await.expect("find");
    assert_eq!(counter.add(1).await, Ok(1));
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.expect("watch");

    let killed = Instant::now();
    victim.process.kill().expect("SIGKILL");
    let _ = victim.process.wait();
    while watcher.downs().await.expect("call").is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the monitor fired within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fired = killed.elapsed();
    assert_eq!(watcher.downs().await, Ok(vec![StopReason::NodeLost]));
    assert_eq!(counter.add(1).await, Err(CallError::LinkLost));
    let down = members_reach(&seed, 2, Duration::from_secs(10)).await + fired;
    // The other survivor agrees.
    assert_eq!(other.expect("MEMBERS 2", Duration::from_secs(10)), "");
    println!("    after SIGKILL: monitor fired in {fired:?}, node declared down in {down:?}");
    // The rest of the cluster keeps working.
    let survivor = seed.find::<Counter>("counter-1").await.expect("find");
    assert_eq!(survivor.add(1).await, Ok(1));

    // Restarted with the same identity: a new incarnation joins.
    let restarted = Instant::now();
    let _victim = ChildNode::start(&spec(&keys, 2, &seed, 3));
    members_reach(&seed, 3, Duration::from_secs(10)).await;
    let counter = seed.find::<Counter>("counter-2").await.expect("find the new one");
    assert_eq!(
        counter.add(1).await,
        Ok(1),
        "a fresh agent on the new incarnation"
    );
    println!("    the restarted node rejoined in {:?}", restarted.elapsed());
    seed.shutdown().await;
}

async fn a_hung_node_is_declared_down_and_rejoins_when_it_wakes() {
    let keys = Keys::new(3);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    let _other = ChildNode::start(&spec(&keys, 1, &seed, 3));
    let hung = ChildNode::start(&spec(&keys, 2, &seed, 3));
    members_reach(&seed, 3, Duration::from_secs(10)).await;
    let counter = seed.find::<Counter>("counter-2").await.expect("find");
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.expect("watch");
    // SIGSTOP: the process holds its sockets open but answers nothing, so only the
    // failure detector can tell.
    assert!(hung.signal("STOP"));
    let stopped = Instant::now();
    let down = members_reach(&seed, 2, Duration::from_secs(10)).await;
    println!("    a hung node declared down after {down:?}");
    while watcher.downs().await.expect("call").is_empty() {
        assert!(stopped.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(watcher.downs().await, Ok(vec![StopReason::NodeLost]));
    assert_eq!(counter.add(1).await, Err(CallError::LinkLost));
    assert!(hung.signal("CONT"));
    let woke = Instant::now();
    members_reach(&seed, 3, Duration::from_secs(20)).await;
    println!("    back as a new incarnation {:?} after waking", woke.elapsed());
    let again = seed.find::<Counter>("counter-2").await.expect("find again");
    assert!(again.add(1).await.is_ok());
    seed.shutdown().await;
}

async fn twenty_nodes_converge_and_find_works_from_each() {
    const N: usize = 20;
    let keys = Keys::new(N);
    let system = System::new();
    let seed = seed_node(&system, &keys).await;
    seed.export("counter-0", &system.spawn(Counter::default()))
        .expect("export");
    let started = Instant::now();
    let children: Vec<_> = (1..N)
        .map(|i| {
            ChildNode::start(&Spec {
                // Each finds the next one's agent.
                find: format!("counter-{}", i % (N - 1) + 1),
                traffic: true,
                ..spec(&keys, i, &seed, N)
            })
        })
        .collect();
    for child in &children {
        child.expect("NODE", Duration::from_secs(30));
    }
    let all_up = started.elapsed();
    let took = members_reach(&seed, N, Duration::from_secs(10)).await;
    let mut slowest = 0u64;
    for child in &children {
        let ms: u64 = child
            .expect("CONVERGED", Duration::from_secs(10))
            .parse()
            .expect("ms");
        slowest = slowest.max(ms);
    }
    for child in &children {
        let found = child.expect("FIND", Duration::from_secs(10));
        assert!(found.starts_with("ok counter-"), "{found}");
    }
    let mut packets = Vec::new();
    let mut bytes = Vec::new();
    for child in &children {
        let traffic = child.expect("TRAFFIC", Duration::from_secs(30));
        let mut it = traffic.split_whitespace();
        packets.push(it.next().and_then(|p| p.parse::<f64>().ok()).expect("packets"));
        bytes.push(it.next().and_then(|b| b.parse::<f64>().ok()).expect("bytes"));
    }
    packets.sort_by(f64::total_cmp);
    bytes.sort_by(f64::total_cmp);
    println!(
        "    {N} processes up in {all_up:?}; the seed saw {N} members {took:?} later; \
         slowest node converged {slowest} ms after it started; \
         membership at rest: median {:.1} packets/s, {:.0} bytes/s per node",
        packets[packets.len() / 2],
        bytes[bytes.len() / 2]
    );
    seed.shutdown().await;
    drop(children);
    let _ = std::io::stdout().flush();
}

fn main() {
    let tests: &[process_tests::Test] = &[
        ("nodes_join_through_a_seed_and_find_each_others_agents", || {
            Box::pin(nodes_join_through_a_seed_and_find_each_others_agents())
        }),
        (
            "groups_span_the_cluster_and_lose_the_members_of_a_lost_node",
            || Box::pin(groups_span_the_cluster_and_lose_the_members_of_a_lost_node()),
        ),
        (
            "references_travel_in_messages_and_replies_across_three_nodes",
            || Box::pin(references_travel_in_messages_and_replies_across_three_nodes()),
        ),
        (
            "a_killed_node_is_declared_down_and_rejoins_when_restarted",
            || Box::pin(a_killed_node_is_declared_down_and_rejoins_when_restarted()),
        ),
        ("a_hung_node_is_declared_down_and_rejoins_when_it_wakes", || {
            Box::pin(a_hung_node_is_declared_down_and_rejoins_when_it_wakes())
        }),
        ("twenty_nodes_converge_and_find_works_from_each", || {
            Box::pin(twenty_nodes_converge_and_find_works_from_each())
        }),
    ];
    process_tests::run("TROUPE_CLUSTER_NODE", child(), tests, Duration::from_secs(90));
}
