//! A snapshot of the live supervision tree (`system.tree()`): printable for people,
//! serializable (serde) for tools.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Phase, Status, SupShared};
use crate::ActorId;

/// A snapshot of a system's agents. Printed with `{}`: every supervision tree, then the
/// agents that no supervisor owns (the first 20, then how many more):
///
/// ```text
/// system (5 agents, 2 unsupervised)
/// ├── supervisor root (one_for_one, 1 restart)
/// │   ├── counter: Counter #3 idle
/// │   └── supervisor workers (one_for_all)
/// │       └── w1: Worker #5 restarting
/// └── unsupervised
///     ├── Planner #1 idle
///     └── Cache #2 not started
/// ```
///
/// Serialized (serde, e.g. as JSON), it is the same tree as data: [`supervisors`]
/// (each a [`SupervisorNode`] whose children are agents and nested supervisors) and
/// [`unsupervised_agents`], every agent an [`AgentNode`] with its type, id, names,
/// state, mailbox depth, restarts and messages handled:
///
/// ```json
/// {"agents": 2, "unsupervised": 1,
///  "supervisors": [{"name": "root", "path": "root", "strategy": "one_for_one",
///    "restarts": 1, "state": "running", "children": [
///      {"kind": "agent", "id": 3, "agent": "Counter", "name": "counter",
///       "registered": null, "state": "running", "status": "idle",
///       "mailbox_depth": 0, "restarts": 1, "messages": 42}]}],
///  "unsupervised_agents": [{"kind": "agent", "id": 1, "agent": "Planner", ...}]}
/// ```
///
/// [`supervisors`]: Tree::supervisors
/// [`unsupervised_agents`]: Tree::unsupervised_agents
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    agents: usize,
    unsupervised: usize,
    supervisors: Vec<SupervisorNode>,
    unsupervised_agents: Vec<AgentNode>,
}

/// How many unsupervised agents the printed tree lists by name.
const LISTED: usize = 20;

/// How many unsupervised agents a tree holds as data (the lowest ids).
pub(crate) const MAX_UNSUPERVISED: usize = 1_000;

/// A supervisor in a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SupervisorNode {
    /// Its name (`root` for one spawned directly, the child name for a nested one, the
    /// pool's name for a pool).
    pub name: String,
    /// The names from the root down to it (`root/workers`).
    pub path: String,
    /// `one_for_one`, `one_for_all` or `rest_for_one`.
    pub strategy: String,
    /// Restarts it performed so far.
    pub restarts: u64,
    /// Running, suspended (by its parent) or stopped.
    pub state: SupervisorState,
    /// Its children in start order.
    pub children: Vec<TreeNode>,
}

/// The state of a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SupervisorState {
    /// Its children run (or it is restarting some of them).
    Running,
    /// Its children are stopped, their mailboxes kept, until its parent decides.
    Suspended,
    /// Gone for good.
    Stopped,
}

/// A child in a [`SupervisorNode`]: an agent or a nested supervisor. Serialized with a
/// `kind` field (`"agent"`, `"supervisor"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TreeNode {
    /// An agent.
    Agent(AgentNode),
    /// A nested supervisor.
    Supervisor(SupervisorNode),
}

/// An agent in a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentNode {
    /// Its id (as [`ActorId::as_u64`]).
    pub id: u64,
    /// Its type's name without the module path.
    pub agent: String,
    /// Its child name under its supervisor, if it is supervised.
    pub name: Option<String>,
    /// A name it is registered under (`system.register`), if any.
    pub registered: Option<String>,
    /// Running, restarting or stopped.
    pub state: AgentState,
    /// In more detail: `idle`, `running`, `hibernating`, `not started`, `restarting`,
    /// `stopping`, `stopped`.
    pub status: String,
    /// Messages waiting in its mailbox.
    pub mailbox_depth: usize,
    /// How many times its supervisor restarted it (0 for an unsupervised agent).
    pub restarts: u64,
    /// Messages it handled so far, across restarts (the difference between two trees,
    /// over the time between them, is its message rate).
    #[serde(default)]
    pub messages: u64,
}

/// The state of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    /// Alive: handling messages, idle, hibernating or not started yet (it starts on its
    /// first message).
    Running,
    /// Between two instances: its supervisor restarts it (perhaps after a backoff);
    /// its mailbox is kept.
    Restarting,
    /// Stopping or stopped.
    Stopped,
}

impl AgentState {
    /// The state a status word stands for.
    pub(crate) fn of_status(status: &str) -> AgentState {
        match status {
            "restarting" => AgentState::Restarting,
            "stopping" | "stopped" => AgentState::Stopped,
            _ => AgentState::Running,
        }
    }
}

impl AgentNode {
    /// An unsupervised agent.
    pub(crate) fn unsupervised(
        id: ActorId,
        agent: &'static str,
        status: &'static str,
        mailbox_depth: usize,
        messages: u64,
        registered: Option<String>,
    ) -> Self {
        AgentNode {
            id: id.as_u64(),
            agent: agent.to_owned(),
            name: None,
            registered,
            state: AgentState::of_status(status),
            status: status.to_owned(),
            mailbox_depth,
            restarts: 0,
            messages,
        }
    }

    /// `Type #id status`, as the printed tree shows an agent.
    fn label(&self) -> String {
        let agent = format!("{} #{} {}", self.agent, self.id, self.status);
        match &self.name {
            Some(name) => format!("{name}: {agent}"),
            None => agent,
        }
    }
}

impl Tree {
    /// `unsupervised` holds every unsupervised agent (at most [`MAX_UNSUPERVISED`] are
    /// kept); `registered` names an agent.
    pub(crate) fn new(
        agents: usize,
        roots: &[Arc<SupShared>],
        mut unsupervised: Vec<AgentNode>,
        unsupervised_count: usize,
        registered: &dyn Fn(ActorId) -> Option<String>,
    ) -> Self {
        unsupervised.sort_by_key(|a| a.id);
        unsupervised.truncate(MAX_UNSUPERVISED);
        Tree {
            agents,
            unsupervised: unsupervised_count,
            supervisors: roots.iter().map(|s| supervisor_node(s, registered)).collect(),
            unsupervised_agents: unsupervised,
        }
    }

    /// How many agents the system had when the snapshot was taken.
    pub fn agents(&self) -> usize {
        self.agents
    }

    /// How many of them no supervisor owns.
    pub fn unsupervised(&self) -> usize {
        self.unsupervised
    }

    /// The root supervisors (pools included), in the order they were spawned.
    pub fn supervisors(&self) -> &[SupervisorNode] {
        &self.supervisors
    }

    /// The agents no supervisor owns, by id (the first 1,000; [`unsupervised`](Tree::unsupervised)
    /// counts them all).
    pub fn unsupervised_agents(&self) -> &[AgentNode] {
        &self.unsupervised_agents
    }

    /// Every agent of the tree: the supervised ones depth first, in start order, then
    /// the unsupervised ones.
    pub fn all_agents(&self) -> Vec<&AgentNode> {
        fn walk<'a>(sup: &'a SupervisorNode, out: &mut Vec<&'a AgentNode>) {
            for child in &sup.children {
                match child {
                    TreeNode::Agent(a) => out.push(a),
                    TreeNode::Supervisor(s) => walk(s, out),
                }
            }
        }
        let mut out = Vec::new();
        for sup in &self.supervisors {
            walk(sup, &mut out);
        }
        out.extend(self.unsupervised_agents.iter());
        out
    }

    /// The agent with this id, if the tree holds it.
    pub fn agent(&self, id: ActorId) -> Option<&AgentNode> {
        self.all_agents().into_iter().find(|a| a.id == id.as_u64())
    }
}

fn supervisor_node(sup: &SupShared, registered: &dyn Fn(ActorId) -> Option<String>) -> SupervisorNode {
    let st = sup.state.lock();
    let children = st
        .children
        .iter()
        .map(|c| match c.ops.subtree() {
            Some(sub) => TreeNode::Supervisor(supervisor_node(&sub, registered)),
            None => {
                let status = match c.phase {
                    Phase::Running => c.ops.status(),
                    Phase::Waiting(_) => "restarting",
                };
                let (agent, mailbox_depth, messages) = c.ops.mailbox().unwrap_or(("", 0, 0));
                let id = c.ops.id();
                TreeNode::Agent(AgentNode {
                    id: id.map_or(0, ActorId::as_u64),
                    agent: agent.to_owned(),
                    name: Some(c.name.clone()),
                    registered: id.and_then(registered),
                    state: AgentState::of_status(status),
                    status: status.to_owned(),
                    mailbox_depth,
                    restarts: c.restarts,
                    messages,
                })
            }
        })
        .collect();
    SupervisorNode {
        name: sup.name.clone(),
        path: sup.path.clone(),
        strategy: st.strategy.to_string(),
        restarts: st.total_restarts,
        state: match st.status {
            Status::Running | Status::Busy => SupervisorState::Running,
            Status::Suspended => SupervisorState::Suspended,
            Status::Stopped => SupervisorState::Stopped,
        },
        children,
    }
}

/// A line of the printed tree and the lines below it.
struct Line {
    label: String,
    children: Vec<Line>,
}

fn supervisor_line(sup: &SupervisorNode) -> Line {
    let mut head = format!("supervisor {} ({}", sup.name, sup.strategy);
    match sup.restarts {
        0 => {}
        1 => head.push_str(", 1 restart"),
        n => head.push_str(&format!(", {n} restarts")),
    }
    match sup.state {
        SupervisorState::Running => {}
        SupervisorState::Suspended => head.push_str(", suspended"),
        SupervisorState::Stopped => head.push_str(", stopped"),
    }
    head.push(')');
    Line {
        label: head,
        children: sup
            .children
            .iter()
            .map(|c| match c {
                TreeNode::Agent(a) => Line {
                    label: a.label(),
                    children: Vec::new(),
                },
                TreeNode::Supervisor(s) => supervisor_line(s),
            })
            .collect(),
    }
}

fn write_lines(f: &mut fmt::Formatter<'_>, lines: &[Line], prefix: &str) -> fmt::Result {
    for (i, n) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        writeln!(f, "{prefix}{}{}", if last { "└── " } else { "├── " }, n.label)?;
        let next = format!("{prefix}{}", if last { "    " } else { "│   " });
        write_lines(f, &n.children, &next)?;
    }
    Ok(())
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "system ({} agent{}",
            self.agents,
            if self.agents == 1 { "" } else { "s" }
        )?;
        match self.unsupervised {
            0 => writeln!(f, ")")?,
            n => writeln!(f, ", {n} unsupervised)")?,
        }
        let mut lines: Vec<Line> = self.supervisors.iter().map(supervisor_line).collect();
        if self.unsupervised > 0 {
            let mut children: Vec<Line> = self
                .unsupervised_agents
                .iter()
                .take(LISTED)
                .map(|a| Line {
                    label: a.label(),
                    children: Vec::new(),
                })
                .collect();
            if self.unsupervised > LISTED {
                children.push(Line {
                    label: format!("… and {} more", self.unsupervised - LISTED),
                    children: Vec::new(),
                });
            }
            lines.push(Line {
                label: "unsupervised".to_owned(),
                children,
            });
        }
        write_lines(f, &lines, "")
    }
}
