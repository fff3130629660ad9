//! A readable picture of the live supervision tree (`system.tree()`).

use std::fmt;
use std::sync::Arc;

use super::{Phase, Status, SupShared};

/// A snapshot of a system's agents, printed with `{}`: every supervision tree, then the
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
#[derive(Debug, Clone)]
pub struct Tree {
    agents: usize,
    unsupervised: usize,
    roots: Vec<Node>,
}

/// How many unsupervised agents a tree lists by name.
const LISTED: usize = 20;

#[derive(Debug, Clone)]
struct Node {
    label: String,
    children: Vec<Node>,
}

impl Tree {
    pub(crate) fn new(
        agents: usize,
        roots: &[Arc<SupShared>],
        mut unsupervised: Vec<(String, &'static str)>,
    ) -> Self {
        let mut nodes: Vec<Node> = roots.iter().map(|s| supervisor_node(s)).collect();
        let count = unsupervised.len();
        if count > 0 {
            unsupervised.sort_by_key(|(name, _)| id_order(name));
            let mut children: Vec<Node> = unsupervised
                .into_iter()
                .take(LISTED)
                .map(|(name, status)| Node {
                    label: format!("{name} {status}"),
                    children: Vec::new(),
                })
                .collect();
            if count > LISTED {
                children.push(Node {
                    label: format!("… and {} more", count - LISTED),
                    children: Vec::new(),
                });
            }
            nodes.push(Node {
                label: "unsupervised".to_owned(),
                children,
            });
        }
        Tree {
            agents,
            unsupervised: count,
            roots: nodes,
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
}

fn supervisor_node(sup: &SupShared) -> Node {
    let st = sup.state.lock();
    let mut head = format!("supervisor {} ({}", sup.name, st.strategy);
    match st.total_restarts {
        0 => {}
        1 => head.push_str(", 1 restart"),
        n => head.push_str(&format!(", {n} restarts")),
    }
    match st.status {
        Status::Running | Status::Busy => {}
        Status::Suspended => head.push_str(", suspended"),
        Status::Stopped => head.push_str(", stopped"),
    }
    head.push(')');
    let children = st
        .children
        .iter()
        .map(|c| match c.ops.subtree() {
            Some(sub) => supervisor_node(&sub),
            None => Node {
                label: format!(
                    "{}: {} {}",
                    c.name,
                    c.ops.describe(),
                    match c.phase {
                        Phase::Running => c.ops.status(),
                        Phase::Waiting(_) => "restarting",
                    }
                ),
                children: Vec::new(),
            },
        })
        .collect();
    Node {
        label: head,
        children,
    }
}

fn write_nodes(f: &mut fmt::Formatter<'_>, nodes: &[Node], prefix: &str) -> fmt::Result {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        writeln!(f, "{prefix}{}{}", if last { "└── " } else { "├── " }, n.label)?;
        let next = format!("{prefix}{}", if last { "    " } else { "│   " });
        write_nodes(f, &n.children, &next)?;
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
        write_nodes(f, &self.roots, "")
    }
}

/// Sorts `Type #12` labels by id, so agents are listed in spawn order.
fn id_order(label: &str) -> u64 {
    label
        .rsplit('#')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}
