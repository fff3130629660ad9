//! A deterministic simulator for the membership layer: many [`Swim`]s in one process, on
//! virtual time, over a network that loses and delays packets.
//!
//! Nothing here sleeps or touches a socket. Events (a packet arriving, a timer firing, a
//! node joining) wait in a queue ordered by virtual time and then by the order they were
//! made; one seeded RNG decides the join times, which packets are lost and how late the
//! others arrive. So a run is a function of its seed: a failure replays exactly.
//!
//! The scenario: node 0 starts alone and the others announce to it over the first
//! second (retrying while they know no one, as the node layer must: foca does not retry
//! an announce that was lost). Once every node sees all the others, the cluster rests,
//! then one node is killed (it neither sends nor receives again), and the simulator
//! measures how fast the others declare it down, and whether any live node is wrongly
//! declared down meanwhile.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foca::Timer;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::{Effect, MemberId, MembershipConfig, Swim};

/// How long a node that knows no one waits before announcing itself again.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// The simulated network: each packet is lost with probability `loss`, and otherwise
/// arrives after a delay drawn uniformly from `min_delay..=max_delay`.
#[derive(Clone, Copy, Debug)]
struct Network {
    loss: f64,
    min_delay: Duration,
    max_delay: Duration,
}

impl Network {
    /// A LAN-ish network: 1 to 20 ms one way, losing `loss` of the packets.
    fn lossy(loss: f64) -> Network {
        Network {
            loss,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
        }
    }
}

/// What happens to one node at one instant.
#[derive(Debug)]
enum Event {
    /// Announce to node 0 (again, if the node still knows no one).
    Join,
    /// A packet arrives.
    Deliver(Bytes),
    /// A timer the node scheduled fires.
    Timer(Timer<MemberId>),
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    node: usize,
    event: Event,
}

// `BinaryHeap` is a max-heap: the earliest event (then the first made) must compare
// greatest.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

/// Running totals; a window's figures are the difference of two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    /// Membership packets sent by live nodes (lost ones included).
    packets: u64,
    /// Their bytes (membership payload only: no framing or encryption overhead).
    bytes: u64,
    /// `Down` effects about a node that is alive (renames excluded), summed over the
    /// nodes that emit them.
    false_downs: u64,
    /// `Down` + `Up` pairs for the same node: a member seen under a new incarnation.
    renames: u64,
    /// Nodes that learnt they had been declared down and rejoined.
    rejoins: u64,
    /// Packets `Swim::handle_data` refused.
    refused: u64,
    /// Announces sent again because the node still knew no one.
    join_retries: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;

    fn sub(self, before: Counters) -> Counters {
        Counters {
            packets: self.packets - before.packets,
            bytes: self.bytes - before.bytes,
            false_downs: self.false_downs - before.false_downs,
            renames: self.renames - before.renames,
            rejoins: self.rejoins - before.rejoins,
            refused: self.refused - before.refused,
            join_retries: self.join_retries - before.join_retries,
        }
    }
}

/// The identity of simulated node `i` (its index is in the first bytes of its key).
fn member(i: usize, incarnation: u64) -> MemberId {
    let key = u32::try_from(i).expect("fewer than 2^32 nodes").to_le_bytes();
    let mut node = [0; 32];
    node[..4].copy_from_slice(&key);
    MemberId {
        node,
        addr: SocketAddr::from((Ipv4Addr::new(10, key[2], key[1], key[0]), 7000)),
        incarnation,
    }
}

fn index(id: &MemberId) -> usize {
    let [a, b, c, d, ..] = id.node;
    u32::from_le_bytes([a, b, c, d]) as usize
}

/// N nodes, the network between them and the clock.
struct Sim {
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Swim>,
    alive: Vec<bool>,
    rng: StdRng,
    net: Network,
    counters: Counters,
    /// Whether each node sees all the others (tracked until a node is killed).
    converged: Vec<bool>,
    num_converged: usize,
    /// How many (node, member it sees) pairs there are, summed over the nodes, and when
    /// that first reached 99% of all pairs.
    known_pairs: usize,
    nearly_converged: Option<Duration>,
    /// The killed node, when it was killed, and who has declared it down since.
    victim: Option<(usize, Duration)>,
    declared_victim_down: Vec<bool>,
    num_agree: usize,
    first_detection: Option<Duration>,
    all_agree: Option<Duration>,
}

impl Sim {
    fn new(n: usize, net: Network, seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let defaults = MembershipConfig::default();
        let max = defaults.max_members;
        let config = defaults.max_members(max.max(n));
        let nodes = (0..n)
            .map(|i| {
                let mut seed = [0; 32];
                rng.fill_bytes(&mut seed);
                Swim::new(member(i, 1), &config, seed)
            })
            .collect();
        let mut sim = Sim {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            alive: vec![true; n],
            rng,
            net,
            counters: Counters::default(),
            converged: vec![n == 1; n],
            num_converged: usize::from(n == 1),
            known_pairs: 0,
            nearly_converged: None,
            victim: None,
            declared_victim_down: vec![false; n],
            num_agree: 0,
            first_detection: None,
            all_agree: None,
        };
        for i in 1..n {
            let at = Duration::from_micros(sim.rng.random_range(0..1_000_000));
            sim.schedule(at, i, Event::Join);
        }
        sim
    }

    fn schedule(&mut self, at: Duration, node: usize, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            node,
            event,
        });
    }

    /// Runs events up to `deadline`, or until `stop` holds after one; says whether it
    /// stopped. The clock is left at the last event (if stopped) or at `deadline`.
    fn run_until(&mut self, deadline: Duration, stop: impl Fn(&Sim) -> bool) -> bool {
        while self.queue.peek().is_some_and(|e| e.at <= deadline) {
            let Some(Scheduled { at, node, event, .. }) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.step(node, event);
            if stop(self) {
                return true;
            }
        }
        self.now = deadline;
        false
    }

    fn step(&mut self, i: usize, event: Event) {
        if !self.alive[i] {
            return;
        }
        let before = self.nodes[i].num_members();
        let effects = match event {
            Event::Join => {
                if self.nodes[i].num_members() > 0 {
                    return;
                }
                if self.now >= JOIN_RETRY {
                    self.counters.join_retries += 1;
                }
                self.schedule(self.now + JOIN_RETRY, i, Event::Join);
                // The seed's incarnation is unknown to a joiner.
                self.nodes[i].announce(member(0, 0))
            }
            Event::Deliver(packet) => {
                let (effects, result) = self.nodes[i].handle_data(&packet);
                if result.is_err() {
                    self.counters.refused += 1;
                }
                effects
            }
            Event::Timer(timer) => self.nodes[i].handle_timer(timer),
        };
        self.apply(i, &effects);
        if self.victim.is_none() {
            let n = self.nodes.len();
            let after = self.nodes[i].num_members();
            self.known_pairs = self.known_pairs + after - before;
            if self.nearly_converged.is_none() && self.known_pairs * 100 >= n * (n - 1) * 99 {
                self.nearly_converged = Some(self.now);
            }
            let converged = after == n - 1;
            if converged != self.converged[i] {
                self.converged[i] = converged;
                if converged {
                    self.num_converged += 1;
                } else {
                    self.num_converged -= 1;
                }
            }
        }
    }

    fn apply(&mut self, i: usize, effects: &[Effect]) {
        for (k, effect) in effects.iter().enumerate() {
            match effect {
                Effect::Send(to, packet) => {
                    self.counters.packets += 1;
                    self.counters.bytes += packet.len() as u64;
                    if self.rng.random_bool(self.net.loss) {
                        continue;
                    }
                    let (min, max) = (self.net.min_delay.as_micros(), self.net.max_delay.as_micros());
                    let delay = self.rng.random_range(min..=max);
                    let at = self.now + Duration::from_micros(delay as u64);
                    self.schedule(at, index(to), Event::Deliver(packet.clone()));
                }
                Effect::Schedule(after, timer) => {
                    self.schedule(self.now + *after, i, Event::Timer(timer.clone()));
                }
                Effect::Up(m) => {
                    let j = index(m);
                    if self.victim.is_some_and(|(v, _)| v == j) && self.declared_victim_down[i] {
                        self.declared_victim_down[i] = false;
                        self.num_agree -= 1;
                    }
                }
                Effect::Down(m) => {
                    let j = index(m);
                    let renamed = matches!(effects.get(k + 1), Some(Effect::Up(new)) if index(new) == j);
                    if renamed {
                        self.counters.renames += 1;
                    } else if let Some((_, killed_at)) = self.victim.filter(|(v, _)| *v == j) {
                        if !self.declared_victim_down[i] {
                            self.declared_victim_down[i] = true;
                            self.num_agree += 1;
                            let since = self.now - killed_at;
                            self.first_detection.get_or_insert(since);
                            if self.num_agree == self.num_live() {
                                self.all_agree.get_or_insert(since);
                            }
                        }
                    } else if self.alive[j] {
                        self.counters.false_downs += 1;
                    }
                }
                Effect::Rejoined(_) => self.counters.rejoins += 1,
            }
        }
    }

    fn kill(&mut self, i: usize) {
        self.alive[i] = false;
        self.victim = Some((i, self.now));
    }

    fn num_live(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// Live nodes whose view differs from "every other live node, and no dead one".
    fn wrong_views(&self) -> usize {
        let live: HashSet<usize> = (0..self.nodes.len()).filter(|i| self.alive[*i]).collect();
        live.iter()
            .filter(|i| {
                let seen: HashSet<usize> = self.nodes[**i].members().map(index).collect();
                seen.len() != live.len() - 1 || seen.iter().any(|j| !live.contains(j) || j == *i)
            })
            .count()
    }
}

/// The phases of a run, in virtual time.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    nodes: usize,
    loss: f64,
    seed: u64,
    /// Give up waiting for convergence after this long (and kill a node anyway).
    converge_limit: Duration,
    /// After convergence, left for the join news to die down before measuring the rest
    /// traffic.
    settle: Duration,
    /// The rest traffic is measured over this long, then a node is killed.
    rest: Duration,
    /// How long the run goes on after the kill.
    window: Duration,
}

impl Scenario {
    fn new(nodes: usize, loss: f64, seed: u64) -> Scenario {
        Scenario {
            nodes,
            loss,
            seed,
            converge_limit: Duration::from_secs(120),
            settle: Duration::from_secs(10),
            rest: Duration::from_secs(30),
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Report {
    /// When every node saw all the others, from the start.
    converge: Option<Duration>,
    /// When 99% of the (node, member it sees) pairs were known, from the start.
    nearly_converged: Option<Duration>,
    /// From the kill to the first `Down` about the killed node.
    first_detection: Option<Duration>,
    /// From the kill until every live node had declared it down.
    all_agree: Option<Duration>,
    /// From the start to convergence.
    join: Counters,
    /// Over the rest period.
    rest: Counters,
    /// From the kill to the end.
    after_kill: Counters,
    /// Live nodes whose view at the end is not exactly the live nodes.
    wrong_views: usize,
}

fn run(scenario: Scenario) -> Report {
    let n = scenario.nodes;
    let mut sim = Sim::new(n, Network::lossy(scenario.loss), scenario.seed);

    let converged = sim.run_until(scenario.converge_limit, |s| s.num_converged == n);
    let converge = converged.then_some(sim.now);
    let join = sim.counters;

    sim.run_until(sim.now + scenario.settle, |_| false);
    let rest_start = sim.counters;
    sim.run_until(sim.now + scenario.rest, |_| false);
    let rest = sim.counters - rest_start;

    let killed_at = sim.counters;
    // Not node 0: every joiner announced to it, which could make it special.
    sim.kill(n / 2);
    sim.run_until(sim.now + scenario.window, |_| false);
    let after_kill = sim.counters - killed_at;

    Report {
        converge,
        nearly_converged: sim.nearly_converged,
        first_detection: sim.first_detection,
        all_agree: sim.all_agree,
        join,
        rest,
        after_kill,
        wrong_views: sim.wrong_views(),
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn table(runs: &[(Scenario, Report)]) -> String {
    let mut out = String::from(
        "| loss | converge s | 99% of pairs s | first detection s | all agree s \
         | false suspicions (Down about live nodes) | rejoins | msgs/node/s | bytes/node/s |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (scenario, r) in runs {
        let per_node_second = |count: u64| count as f64 / scenario.nodes as f64 / scenario.rest.as_secs_f64();
        let _ = writeln!(
            out,
            "| {}% | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} |",
            scenario.loss * 100.0,
            secs(r.converge),
            secs(r.nearly_converged),
            secs(r.first_detection),
            secs(r.all_agree),
            r.after_kill.false_downs,
            r.after_kill.rejoins,
            per_node_second(r.rest.packets),
            per_node_second(r.rest.bytes),
        );
    }
    out
}

fn details(scenario: &Scenario, r: &Report, wall: Duration) -> String {
    format!(
        "{} nodes, {}% loss, seed {}, wall {:.1?}: join: {} false downs, {} rejoins, {} join \
         retries, {} refused; rest: {} false downs, {} rejoins; after kill: {} renames, {} refused; \
         {} live nodes with a wrong view at the end",
        scenario.nodes,
        scenario.loss * 100.0,
        scenario.seed,
        wall,
        r.join.false_downs,
        r.join.rejoins,
        r.join.join_retries,
        r.join.refused,
        r.rest.false_downs,
        r.rest.rejoins,
        r.after_kill.renames,
        r.after_kill.refused,
        r.wrong_views,
    )
}

#[test]
fn a_simulation_is_a_function_of_its_seed() {
    let scenario = Scenario {
        converge_limit: Duration::from_secs(30),
        settle: Duration::from_secs(1),
        rest: Duration::from_secs(2),
        window: Duration::from_secs(10),
        ..Scenario::new(20, 0.05, 3)
    };
    let first = run(scenario);
    assert!(first.join.packets > 0);
    assert_eq!(first, run(scenario));
    assert_ne!(first, run(Scenario { seed: 4, ..scenario }));
}

/// 100 nodes on a network that loses 1% of packets: they find each other, notice a
/// dead node, and declare no live one down.
///
/// The bounds come from `simulate_100_nodes_over_seeds` (50 seeds at 1% loss, with the
/// defaults: 32 KiB packets, news passed on 30 times, 1.5 s of suspicion):
/// - 99% of the membership spreads within 1.3 to 2.2 s, and every node sees every
///   other within 1.5 to 2.6 s (median 2.0 s); a late joiner whose news was already
///   spent would wait for its periodic announce (every 10 s), so the bound is 10 s.
///   (With news passed on 10 times and 4 KiB packets, the median was 11.2 s.)
/// - The first detection needs someone to probe the dead node (each node probes one
///   member a second), the 300 ms probe timeout, indirect probes, then the suspicion
///   (1.5 s): 2.5 to 9.1 s. The `Down` then reaches everyone within 0.5 to 1 s. All
///   agreed after 3.0 to 9.6 s; the bound is 15 s.
/// - No run declared a live node down.
#[test]
fn hundred_nodes_at_one_percent_loss_converge_and_agree_on_a_dead_node() {
    let scenario = Scenario::new(100, 0.01, 7);
    let runs = [(scenario, run(scenario))];
    println!("{}", table(&runs));
    let report = &runs[0].1;

    let converge = report.converge.expect("the cluster converged");
    assert!(converge < Duration::from_secs(10), "converged after {converge:?}");
    let first = report.first_detection.expect("the dead node was noticed");
    let all = report
        .all_agree
        .expect("every live node declared the dead node down");
    assert!(first <= all);
    assert!(all < Duration::from_secs(15), "all agreed after {all:?}");
    let false_downs = report.join.false_downs + report.rest.false_downs + report.after_kill.false_downs;
    assert_eq!(false_downs, 0, "no live node is declared down");
    assert_eq!(
        report.wrong_views, 0,
        "every live node sees exactly the live nodes at the end"
    );
    assert_eq!(
        report.join.refused + report.rest.refused + report.after_kill.refused,
        0
    );
}

/// The spread of the 100-node figures over seeds, behind the bounds above.
#[test]
#[ignore = "slow in debug; prints figures rather than checking them"]
fn simulate_100_nodes_over_seeds() {
    for loss in [0.0, 0.01, 0.05] {
        let mut converge = Vec::new();
        let mut nearly = Vec::new();
        let mut first = Vec::new();
        let mut spread = Vec::new();
        let mut agree = Vec::new();
        let mut rejoins = 0;
        let mut wrong = 0;
        for seed in 0..50 {
            let r = run(Scenario::new(100, loss, seed));
            converge.push(r.converge.unwrap_or(Duration::MAX));
            nearly.push(r.nearly_converged.unwrap_or(Duration::MAX));
            let f = r.first_detection.unwrap_or(Duration::MAX);
            first.push(f);
            spread.push(r.all_agree.map_or(Duration::MAX, |a| a - f));
            agree.push(r.all_agree.unwrap_or(Duration::MAX));
            rejoins += r.join.rejoins + r.rest.rejoins + r.after_kill.rejoins;
            wrong += r.wrong_views;
        }
        let range = |v: &mut Vec<Duration>| {
            v.sort();
            format!("{:.2?} / {:.2?} / {:.2?}", v[0], v[v.len() / 2], v[v.len() - 1])
        };
        println!(
            "{}% loss, min / median / max over 50 seeds: converge {}; 99% of pairs {}; first \
             detection {}; all agree {}, minus first {}; {rejoins} rejoins, {wrong} wrong views at the end",
            loss * 100.0,
            range(&mut converge),
            range(&mut nearly),
            range(&mut first),
            range(&mut agree),
            range(&mut spread),
        );
    }
}

/// The table of the 1,000-node runs (about 60 s: run with `--release -- --ignored
/// --nocapture`).
///
/// What the figures show of foca 2.0 with our defaults:
/// - 99% of the membership spreads in 1.5 to 2.7 s, and every node sees every other in
///   about 2 s at 0-1% loss; at 5% a late joiner whose join news was spent learns the
///   rest only from its periodic announce (every 10 s) or when probed: about a minute.
///   With news passed on 10 times it took 60 to 80 s at every loss rate, and with 4 KiB
///   packets too (an announce answer listed about 60 members), 320 to 380 s.
/// - foca's `ChangeSuspectToDown` timer declares a suspect down (and tells it to rejoin)
///   even when it refuted the suspicion meanwhile; `Swim::handle_timer` drops such
///   timers, which took the rejoins at 5% loss from dozens to none.
/// - Only the prober that failed turns a suspect into down; a node that misses the
///   `Down` gossip keeps the dead node as suspect (still a member) until it probes it.
#[test]
#[ignore = "takes minutes; prints figures rather than checking them"]
fn simulate_1000_nodes() {
    let runs: Vec<(Scenario, Report)> = [0.0, 0.01, 0.05]
        .into_iter()
        .map(|loss| {
            let scenario = Scenario {
                converge_limit: Duration::from_secs(600),
                ..Scenario::new(1000, loss, 1)
            };
            let started = Instant::now();
            let report = run(scenario);
            println!("{}", details(&scenario, &report, started.elapsed()));
            (scenario, report)
        })
        .collect();
    println!("\n{}", table(&runs));
}
