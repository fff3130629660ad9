//! A readable picture of the live supervision tree (`system.tree()`).

use std::fmt;
use std::sync::Arc;

use super::{Phase, Status, SupShared};

/// A snapshot of the supervision tree, printed with `{}`:
///
/// ```text
/// system (5 agents)
/// └── supervisor root (one_for_one, 1 restart)
///     ├── counter: Counter #3 running
///     └── supervisor workers (one_for_all)
///         └── w1: Worker #5 restarting
/// ```
#[derive(Debug, Clone)]
pub struct Tree {
    agents: usize,
    roots: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Node {
    label: String,
    children: Vec<Node>,
}

impl Tree {
    pub(crate) fn new(agents: usize, roots: &[Arc<SupShared>]) -> Self {
        Tree {
            agents,
            roots: roots.iter().map(|s| supervisor_node(s)).collect(),
        }
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
                        Phase::Running => "running",
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
        writeln!(
            f,
            "system ({} agent{})",
            self.agents,
            if self.agents == 1 { "" } else { "s" }
        )?;
        write_nodes(f, &self.roots, "")
    }
}
