//! What the live view shows, as one serializable value: [`Snapshot`], built by
//! [`snapshot`] from public APIs only.
//!
//! The supervision tree's shape comes from `System::tree()`'s printed form, parsed back
//! line by line; each agent's mailbox depth and restarts from the tree as data
//! (`Tree::all_agents`); messages per second, mailbox depths, restarts and crashes per
//! agent type from `System::stats()`. The chart shows the messages handled per second
//! in the whole system, unless the application hands the live view a counter of its own.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actor_core::System;
use actor_secure::Node;
use serde::{Deserialize, Serialize};

/// How many points of the chart's series a snapshot carries (one a second).
pub(crate) const SERIES_LEN: usize = 60;

/// How many tree entries a snapshot lists at most; the rest are counted in
/// [`Snapshot::omitted`].
pub(crate) const MAX_TREE_ENTRIES: usize = 1_000;

/// One picture of a system and its nodes, as `GET /api/snapshot` returns it (JSON) and
/// `GET /api/events` sends it every second.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Counts the snapshots the live view has built, from 1.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// How many agents are alive.
    pub agents: usize,
    /// How many of them no supervisor owns.
    pub unsupervised: usize,
    /// Restarts so far, summed over every supervisor.
    pub restarts: u64,
    /// True when the system has more agents than the live view's limit: the tree then
    /// shows one row per agent type under each supervisor instead of one per agent.
    pub aggregated: bool,
    /// The supervision trees, then the unsupervised agents.
    pub tree: Vec<TreeEntry>,
    /// Tree entries left out to keep the snapshot small.
    pub omitted: usize,
    /// Agents per type, largest first.
    pub types: Vec<TypeRow>,
    /// The charted series.
    pub rate: Rate,
    /// The nodes: those the live view serves, and the cluster members they see.
    pub nodes: Vec<NodeRow>,
    /// Which node sees which as a live cluster member.
    pub links: Vec<LinkRow>,
}

/// What a tree entry stands for.
// Not `Agent` for one agent: a public item of that name would make rustc spell out
// `troupe::Agent` in users' error messages (tests/ui/*.stderr pin them).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A supervisor (a pool is one too); its children follow.
    Supervisor,
    /// One agent.
    Single,
    /// Several agents of one type under one parent, counted (beyond the limit).
    Counted,
    /// The agents no supervisor owns.
    Unsupervised,
    /// Agents not listed one by one.
    More,
}

/// One entry of the supervision tree.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeEntry {
    /// What it stands for.
    pub kind: EntryKind,
    /// The supervisor's or the child's name (empty for an unnamed agent).
    pub name: String,
    /// The agent's type (agents and counted rows).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub type_name: Option<String>,
    /// The agent's id, `#12` (agents).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// `running`, `idle`, `hibernating`, `restarting`, ... for an agent; the strategy
    /// (and `suspended` or `stopped`) for a supervisor; a breakdown for counted rows.
    pub status: String,
    /// A supervisor's restarts so far; an agent's own restarts.
    pub restarts: u64,
    /// An agent's messages waiting in its mailbox now.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mailbox: Option<usize>,
    /// The messages an agent handled per second since the last snapshot (none in the
    /// first snapshot that lists it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub messages_per_second: Option<f64>,
    /// How many agents the entry stands for (1 for an agent).
    pub count: usize,
    /// Its children (supervisors).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub children: Vec<TreeEntry>,
}

/// How many agents of one type are alive, and in which state.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeRow {
    /// The agent type (`unlisted` for unsupervised agents the tree does not name).
    pub type_name: String,
    /// Agents of that type.
    pub agents: usize,
    /// Of which handling a message now.
    pub running: usize,
    /// Of which waiting for a restart.
    pub restarting: usize,
    /// Messages agents of that type handled per second, since the last snapshot.
    #[serde(default)]
    pub messages_per_second: f64,
    /// Messages waiting in their mailboxes now, summed.
    #[serde(default)]
    pub mailbox_depth: usize,
    /// The deepest mailbox of the type so far.
    #[serde(default)]
    pub max_mailbox_depth: usize,
    /// Restarts of agents of that type so far.
    #[serde(default)]
    pub restarts: u64,
    /// Crashes (panics) of agents of that type so far.
    #[serde(default)]
    pub crashes: u64,
}

/// The charted series: a number per second.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rate {
    /// What is counted (`messages` when the application hands the live view a counter
    /// of them; `agents` by default).
    pub label: String,
    /// `per second` for a counter's rate, empty for a plain gauge.
    pub unit: String,
    /// The latest value.
    pub value: f64,
    /// The counter's total, when the series is a counter's rate.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<u64>,
    /// The last values, oldest first, one a second.
    pub series: Vec<f64>,
}

/// A node.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRow {
    /// Its identifier.
    pub identifier: String,
    /// Where it listens.
    pub addr: String,
    /// True for a node this live view serves (a node of this process).
    pub local: bool,
}

/// A node this view serves and a peer node: a member of its cluster, or a node it has
/// had a secure link with, and the traffic of those links (from `Node::stats()`).
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRow {
    /// A node this live view serves.
    pub from: String,
    /// The peer node.
    pub to: String,
    /// `from` sees `to` as a live member of its cluster.
    #[serde(default)]
    pub member: bool,
    /// A secure link between them is up now.
    #[serde(default)]
    pub connected: bool,
    /// Bytes `from` received from `to`, over every link they had.
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes `from` sent to `to`.
    #[serde(default)]
    pub bytes_out: u64,
    /// Link messages both ways per second since the last snapshot.
    #[serde(default)]
    pub messages_per_second: f64,
}

/// The counter behind the chart, read once a second.
pub(crate) type CounterFn = dyn Fn() -> u64 + Send + Sync;

/// What the chart remembers between snapshots.
pub(crate) struct RateState {
    label: String,
    counter: Option<Box<CounterFn>>,
    /// Messages handled per agent type at the last snapshot, for the types' rates.
    handled: HashMap<String, u64>,
    /// Messages handled by each listed agent at the last snapshot, for its rate.
    agent_handled: HashMap<u64, u64>,
    /// Link messages (both ways) per (node, peer) at the last snapshot.
    link_messages: HashMap<(String, String), u64>,
    handled_at: Option<Instant>,
    last: Option<(Instant, u64)>,
    value: f64,
    series: VecDeque<f64>,
    seq: u64,
}

impl std::fmt::Debug for RateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateState")
            .field("label", &self.label)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl RateState {
    pub(crate) fn new(counter: Option<(String, Box<CounterFn>)>) -> Self {
        let (label, counter) = match counter {
            Some((label, f)) => (label, Some(f)),
            None => ("messages".to_owned(), None),
        };
        RateState {
            label,
            counter,
            handled: HashMap::new(),
            agent_handled: HashMap::new(),
            link_messages: HashMap::new(),
            handled_at: None,
            last: None,
            value: 0.0,
            series: VecDeque::with_capacity(SERIES_LEN),
            seq: 0,
        }
    }

    /// Takes one sample: the counter's rate since the last sample (by default, of the
    /// messages handled in the whole system).
    pub(crate) fn sample(&mut self, system: &System, now: Instant) {
        let total = match &self.counter {
            Some(counter) => counter(),
            None => system
                .stats()
                .agent_types
                .iter()
                .map(|t| t.messages_handled)
                .sum(),
        };
        self.value = match self.last {
            Some((then, before)) => {
                let secs = now.saturating_duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    total.saturating_sub(before) as f64 / secs
                } else {
                    self.value
                }
            }
            None => 0.0,
        };
        self.last = Some((now, total));
        if self.series.len() == SERIES_LEN {
            self.series.pop_front();
        }
        self.series.push_back(self.value);
    }

    fn rate(&self) -> Rate {
        Rate {
            label: self.label.clone(),
            unit: "per second".to_owned(),
            value: self.value,
            total: self.last.map(|(_, total)| total),
            series: self.series.iter().copied().collect(),
        }
    }
}

/// Builds one snapshot of `system` and `nodes`; beyond `limit` agents, the tree counts
/// agents per type under each supervisor instead of listing them.
///
/// This is the one place that reads the system: switching to `System::stats()` and a
/// JSON `System::tree()` (per-agent mailbox depth, message rates) changes only this.
pub(crate) fn snapshot(system: &System, nodes: &[Node], limit: usize, rate: &mut RateState) -> Snapshot {
    let tree = system.tree();
    let agents = tree.agents();
    let unsupervised = tree.unsupervised();
    let aggregated = agents > limit;
    let text = tree.to_string();
    // Each listed agent's mailbox, restarts and messages handled, by id.
    let per_agent: HashMap<u64, AgentNumbers> = tree
        .all_agents()
        .into_iter()
        .chain(tree.unsupervised_agents())
        .map(|a| {
            let numbers = AgentNumbers {
                mailbox: a.mailbox_depth,
                restarts: a.restarts,
                messages: a.messages,
            };
            (a.id, numbers)
        })
        .collect();
    drop(tree);

    let now = Instant::now();
    let secs = rate
        .handled_at
        .map(|then| now.saturating_duration_since(then).as_secs_f64())
        .filter(|secs| *secs > 0.0);
    let mut parsed = parse_tree(&text);
    for entry in &mut parsed {
        fill_agents(entry, &per_agent, &rate.agent_handled, secs);
    }
    // Only while agents are listed one by one (beyond the limit the tree counts them per
    // type and shows no agent's rate): the map stays as small as the page's tree.
    rate.agent_handled = if aggregated {
        HashMap::new()
    } else {
        per_agent.iter().map(|(id, n)| (*id, n.messages)).collect()
    };
    let mut types: BTreeMap<String, TypeRow> = BTreeMap::new();
    let mut restarts = 0;
    let mut listed_unsupervised = 0;
    for entry in &parsed {
        tally(entry, &mut types, &mut restarts, &mut listed_unsupervised, false);
    }
    let unlisted = unsupervised.saturating_sub(listed_unsupervised);
    if unlisted > 0 {
        let row = types
            .entry("unlisted".to_owned())
            .or_insert_with(|| row("unlisted"));
        row.agents += unlisted;
    }
    if aggregated {
        for entry in &mut parsed {
            aggregate(entry);
        }
    }
    let mut budget = MAX_TREE_ENTRIES;
    let mut omitted = 0;
    truncate(&mut parsed, &mut budget, &mut omitted);

    // Per type: what the runtime counted (rates since the last snapshot).
    let stats = system.stats();
    for t in &stats.agent_types {
        let previous = rate.handled.insert(t.agent.clone(), t.messages_handled);
        if t.live == 0 && !types.contains_key(&t.agent) {
            continue;
        }
        let row = types.entry(t.agent.clone()).or_insert_with(|| row(&t.agent));
        row.messages_per_second = match (previous, secs) {
            (Some(before), Some(secs)) => t.messages_handled.saturating_sub(before) as f64 / secs,
            _ => 0.0,
        };
        row.mailbox_depth = t.mailbox_depth;
        row.max_mailbox_depth = t.max_mailbox_depth;
        row.restarts = t.restarts;
        row.crashes = t.crashes;
    }
    rate.handled_at = Some(now);
    // Agents the tree does not list one by one (unsupervised beyond its first ones) are
    // counted under their own type from the stats, rather than as `unlisted`.
    for t in &stats.agent_types {
        if let Some(row) = types.get_mut(&t.agent) {
            row.agents = row.agents.max(t.live);
        }
    }
    let named: usize = types
        .iter()
        .filter(|(name, _)| name.as_str() != "unlisted")
        .map(|(_, r)| r.agents)
        .sum();
    if let Some(unlisted) = types.get_mut("unlisted") {
        unlisted.agents = agents.saturating_sub(named);
    }
    types.retain(|name, row| name.as_str() != "unlisted" || row.agents > 0);
    let mut types: Vec<TypeRow> = types.into_values().collect();
    types.sort_by(|a, b| {
        b.agents
            .cmp(&a.agents)
            .then_with(|| a.type_name.cmp(&b.type_name))
    });

    let mut node_rows: Vec<NodeRow> = Vec::new();
    let mut links: Vec<LinkRow> = Vec::new();
    let mut link_messages = HashMap::new();
    for node in nodes {
        let me = node.identifier().to_string();
        upsert(&mut node_rows, me.clone(), node.addr().to_string(), true);
        for member in node.members() {
            let id = member.identifier.to_string();
            if id == me {
                continue;
            }
            upsert(&mut node_rows, id.clone(), member.addr.to_string(), false);
            link_row(&mut links, &me, &id).member = true;
        }
        for stats in node.stats().links {
            let total = stats.messages_in.saturating_add(stats.messages_out);
            let before = rate.link_messages.get(&(me.clone(), stats.peer.clone())).copied();
            link_messages.insert((me.clone(), stats.peer.clone()), total);
            if !node_rows.iter().any(|r| r.identifier == stats.peer) {
                upsert(&mut node_rows, stats.peer.clone(), String::new(), false);
            }
            let row = link_row(&mut links, &me, &stats.peer);
            row.connected = stats.connected;
            row.bytes_in = stats.bytes_in;
            row.bytes_out = stats.bytes_out;
            row.messages_per_second = match (before, secs) {
                (Some(before), Some(secs)) => total.saturating_sub(before) as f64 / secs,
                _ => 0.0,
            };
        }
    }
    rate.link_messages = link_messages;

    rate.seq += 1;
    Snapshot {
        seq: rate.seq,
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        agents,
        unsupervised,
        restarts,
        aggregated,
        tree: parsed,
        omitted,
        types,
        rate: rate.rate(),
        nodes: node_rows,
        links,
    }
}

/// The row of the link from `from` to `to`, added if it is not there yet.
fn link_row<'a>(links: &'a mut Vec<LinkRow>, from: &str, to: &str) -> &'a mut LinkRow {
    let i = match links.iter().position(|l| l.from == from && l.to == to) {
        Some(i) => i,
        None => {
            links.push(LinkRow {
                from: from.to_owned(),
                to: to.to_owned(),
                member: false,
                connected: false,
                bytes_in: 0,
                bytes_out: 0,
                messages_per_second: 0.0,
            });
            links.len() - 1
        }
    };
    &mut links[i]
}

fn upsert(rows: &mut Vec<NodeRow>, identifier: String, addr: String, local: bool) {
    match rows.iter_mut().find(|r| r.identifier == identifier) {
        Some(row) => row.local |= local,
        None => rows.push(NodeRow {
            identifier,
            addr,
            local,
        }),
    }
}

/// What the tree says of one agent.
struct AgentNumbers {
    mailbox: usize,
    restarts: u64,
    messages: u64,
}

/// Fills each listed agent's mailbox depth, restarts and message rate (from its count
/// at the last snapshot, `secs` ago).
fn fill_agents(
    entry: &mut TreeEntry,
    per_agent: &HashMap<u64, AgentNumbers>,
    before: &HashMap<u64, u64>,
    secs: Option<f64>,
) {
    if entry.kind == EntryKind::Single {
        let id = entry
            .id
            .as_deref()
            .and_then(|id| id.strip_prefix('#'))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some((id, n)) = id.and_then(|id| Some((id, per_agent.get(&id)?))) {
            entry.mailbox = Some(n.mailbox);
            entry.restarts = n.restarts;
            entry.messages_per_second = match (before.get(&id), secs) {
                (Some(&then), Some(secs)) => Some(n.messages.saturating_sub(then) as f64 / secs),
                _ => None,
            };
        }
    }
    for child in &mut entry.children {
        fill_agents(child, per_agent, before, secs);
    }
}

fn row(type_name: &str) -> TypeRow {
    TypeRow {
        type_name: type_name.to_owned(),
        agents: 0,
        running: 0,
        restarting: 0,
        messages_per_second: 0.0,
        mailbox_depth: 0,
        max_mailbox_depth: 0,
        restarts: 0,
        crashes: 0,
    }
}

fn tally(
    entry: &TreeEntry,
    types: &mut BTreeMap<String, TypeRow>,
    restarts: &mut u64,
    listed_unsupervised: &mut usize,
    unsupervised: bool,
) {
    match entry.kind {
        EntryKind::Supervisor => *restarts += entry.restarts,
        EntryKind::Single => {
            let name = entry.type_name.as_deref().unwrap_or("?");
            let row = match types.get_mut(name) {
                Some(row) => row,
                None => types.entry(name.to_owned()).or_insert_with(|| row(name)),
            };
            row.agents += 1;
            match entry.status.as_str() {
                "running" => row.running += 1,
                "restarting" => row.restarting += 1,
                _ => {}
            }
            if unsupervised {
                *listed_unsupervised += 1;
            }
        }
        EntryKind::Counted | EntryKind::Unsupervised | EntryKind::More => {}
    }
    let inside = unsupervised || entry.kind == EntryKind::Unsupervised;
    for child in &entry.children {
        tally(child, types, restarts, listed_unsupervised, inside);
    }
}

/// Replaces the agents among `entry`'s children by one counted row per type.
fn aggregate(entry: &mut TreeEntry) {
    if entry.children.is_empty() {
        return;
    }
    let children = std::mem::take(&mut entry.children);
    let mut counted: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let mut kept = Vec::new();
    for mut child in children {
        match child.kind {
            EntryKind::Single => {
                let name = child.type_name.take().unwrap_or_default();
                let (n, states) = counted.entry(name).or_default();
                *n += 1;
                *states.entry(child.status).or_default() += 1;
            }
            _ => {
                aggregate(&mut child);
                kept.push(child);
            }
        }
    }
    let mut rows: Vec<TreeEntry> = counted
        .into_iter()
        .map(|(type_name, (count, states))| TreeEntry {
            kind: EntryKind::Counted,
            name: String::new(),
            type_name: Some(type_name),
            id: None,
            status: states
                .into_iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
            restarts: 0,
            mailbox: None,
            messages_per_second: None,
            count,
            children: Vec::new(),
        })
        .collect();
    rows.append(&mut kept);
    entry.children = rows;
}

/// Keeps at most `budget` entries, depth first; counts the agents of those left out.
fn truncate(entries: &mut Vec<TreeEntry>, budget: &mut usize, omitted: &mut usize) {
    let mut keep = 0;
    for entry in entries.iter_mut() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        keep += 1;
        truncate(&mut entry.children, budget, omitted);
    }
    for dropped in entries.drain(keep..) {
        *omitted += count_entries(&dropped);
    }
}

fn count_entries(entry: &TreeEntry) -> usize {
    1 + entry.children.iter().map(count_entries).sum::<usize>()
}

/// Parses `Tree`'s printed form back into entries.
fn parse_tree(text: &str) -> Vec<TreeEntry> {
    // The stack of open entries; `stack[d]` is the last entry at depth `d`.
    let mut roots: Vec<TreeEntry> = Vec::new();
    let mut stack: Vec<TreeEntry> = Vec::new();
    for line in text.lines().skip(1) {
        let Some((depth, label)) = split_line(line) else {
            continue;
        };
        while stack.len() > depth {
            close(&mut stack, &mut roots);
        }
        let inside_unsupervised = stack.first().is_some_and(|e| e.kind == EntryKind::Unsupervised);
        stack.push(parse_label(label, depth == 0, inside_unsupervised));
    }
    while !stack.is_empty() {
        close(&mut stack, &mut roots);
    }
    roots
}

fn close(stack: &mut Vec<TreeEntry>, roots: &mut Vec<TreeEntry>) {
    if let Some(done) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.children.push(done),
            None => roots.push(done),
        }
    }
}

/// `"│   └── label"` -> `(1, "label")`.
fn split_line(line: &str) -> Option<(usize, &str)> {
    let at = match (line.find("├── "), line.find("└── ")) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    let depth = line[..at].chars().count() / 4;
    Some((depth, &line[at + "├── ".len()..]))
}

fn parse_label(label: &str, top: bool, inside_unsupervised: bool) -> TreeEntry {
    let mut entry = TreeEntry {
        kind: EntryKind::Single,
        name: String::new(),
        type_name: None,
        id: None,
        status: String::new(),
        restarts: 0,
        mailbox: None,
        messages_per_second: None,
        count: 1,
        children: Vec::new(),
    };
    if top && !inside_unsupervised && label == "unsupervised" {
        entry.kind = EntryKind::Unsupervised;
        entry.name = label.to_owned();
        entry.count = 0;
        return entry;
    }
    if let Some(rest) = label.strip_prefix("… and ").and_then(|r| r.strip_suffix(" more")) {
        entry.kind = EntryKind::More;
        entry.count = rest.parse().unwrap_or(0);
        return entry;
    }
    if !inside_unsupervised {
        if let Some(rest) = label.strip_prefix("supervisor ") {
            if let (Some(open), true) = (rest.rfind(" ("), rest.ends_with(')')) {
                entry.kind = EntryKind::Supervisor;
                entry.name = rest[..open].to_owned();
                entry.count = 0;
                let mut notes = Vec::new();
                for part in rest[open + 2..rest.len() - 1].split(", ") {
                    let n = part
                        .strip_suffix(" restarts")
                        .or_else(|| part.strip_suffix(" restart"))
                        .and_then(|n| n.parse::<u64>().ok());
                    match n {
                        Some(n) => entry.restarts = n,
                        None => notes.push(part),
                    }
                }
                entry.status = notes.join(", ");
                return entry;
            }
        }
    }
    // `name: Type #12 status` (supervised) or `Type #12 status` (unsupervised).
    let Some((head, id, status)) = split_id(label) else {
        entry.name = label.to_owned();
        return entry;
    };
    entry.id = Some(id.to_owned());
    entry.status = status.to_owned();
    match head.rfind(": ") {
        Some(colon) if !inside_unsupervised => {
            entry.name = head[..colon].to_owned();
            entry.type_name = Some(head[colon + 2..].to_owned());
        }
        _ => entry.type_name = Some(head.to_owned()),
    }
    entry
}

/// `"w1: Worker #5 not started"` -> `("w1: Worker", "#5", "not started")`.
fn split_id(label: &str) -> Option<(&str, &str, &str)> {
    let mut from = label.len();
    while let Some(at) = label[..from].rfind(" #") {
        let rest = &label[at + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && (rest.len() == digits || rest.as_bytes()[digits] == b' ') {
            let id = &label[at + 1..at + 2 + digits];
            let status = rest[digits..].trim_start();
            return Some((&label[..at], id, status));
        }
        from = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "system (7 agents, 2 unsupervised)
├── supervisor root (one_for_one, 3 restarts)
│   ├── counter: Counter #3 idle
│   └── supervisor workers (one_for_all, suspended)
│       ├── w1: Worker #5 restarting
│       └── w2: Worker #6 not started
└── unsupervised
    ├── Planner #1 running
    └── … and 1 more
";

    #[test]
    fn the_printed_tree_parses_back_into_supervisors_and_agents() {
        let tree = parse_tree(TREE);
        assert_eq!(tree.len(), 2);
        let root = &tree[0];
        assert_eq!(
            (root.kind, root.name.as_str(), root.restarts),
            (EntryKind::Supervisor, "root", 3)
        );
        assert_eq!(root.status, "one_for_one");
        let counter = &root.children[0];
        assert_eq!(counter.name, "counter");
        assert_eq!(counter.type_name.as_deref(), Some("Counter"));
        assert_eq!(counter.id.as_deref(), Some("#3"));
        assert_eq!(counter.status, "idle");
        let workers = &root.children[1];
        assert_eq!(workers.status, "one_for_all, suspended");
        assert_eq!(workers.children[1].status, "not started");
        let unsupervised = &tree[1];
        assert_eq!(unsupervised.kind, EntryKind::Unsupervised);
        assert_eq!(unsupervised.children[0].type_name.as_deref(), Some("Planner"));
        assert_eq!(unsupervised.children[1].kind, EntryKind::More);
        assert_eq!(unsupervised.children[1].count, 1);
    }

    #[test]
    fn agents_beyond_the_limit_are_counted_per_type() {
        let mut tree = parse_tree(TREE);
        for e in &mut tree {
            aggregate(e);
        }
        let workers = &tree[0].children[1];
        assert_eq!(workers.children.len(), 1);
        let row = &workers.children[0];
        assert_eq!((row.kind, row.count), (EntryKind::Counted, 2));
        assert_eq!(row.status, "1 not started, 1 restarting");
    }

    #[test]
    fn a_long_tree_is_cut_to_the_budget_and_says_how_much_is_left_out() {
        let mut entries: Vec<TreeEntry> = (0..10)
            .map(|i| parse_label(&format!("a{i}: A #{i} idle"), false, false))
            .collect();
        let (mut budget, mut omitted) = (4, 0);
        truncate(&mut entries, &mut budget, &mut omitted);
        assert_eq!((entries.len(), omitted), (4, 6));
    }
}
