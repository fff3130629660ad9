//! A live view of a system and its nodes in a web browser (feature `web`, off by
//! default).
//!
//! [`LiveView`] serves one self-contained page (no external assets: it works without
//! internet access) that shows the supervision tree, agents per type, restarts, the
//! cluster's nodes and links, and a chart of a number per second, updated every second
//! over server-sent events:
//!
//! ```no_run
//! # // no_run: it serves until the program ends.
//! use troupe::prelude::*;
//! use troupe::web::LiveView;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = System::new();
//! let view = LiveView::new(&system).bind("127.0.0.1:0").serve().await?;
//! println!("live view: {}", view.url());
//! // ... run the application ...
//! view.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Endpoints: `GET /` (the page), `GET /api/snapshot` (a [`Snapshot`] as JSON),
//! `GET /api/events` (server-sent events, one `snapshot` event a second). It binds to
//! 127.0.0.1 unless told otherwise; [`LiveView::token`] makes every request present a
//! secret.
//!
//! [`LiveView::behind`] puts the view behind a node's access control as well: it keeps
//! listening on loopback, and the node opens an outlet to it, so that operators on other
//! nodes reach it through a portal (an inlet, or [`Node::connect_outlet`]) that the
//! node's policy opens or refuses per connection, from the connecting node's identity
//! and credentials:
//!
//! ```
//! use troupe::prelude::*;
//! use troupe::secure::{Node, TrustPolicy};
//! use troupe::web::LiveView;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = System::new();
//! let node = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
//! let view = LiveView::new(&system)
//!     .node(&node)
//!     .behind(&node, "live-view", r#"role = "operator""#)
//!     .serve()
//!     .await?;
//! // On an operator's node (its credential says role = "operator"):
//! //   operator.inlet("127.0.0.1:8080", node_addr, "live-view").await?;
//! // then http://127.0.0.1:8080/ in a browser there.
//! view.stop().await; // removes the outlet too
//! # node.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The book's chapter "A live view of your agents" says what it shows and what it does
//! not yet.

mod server;
mod snapshot;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actor_core::System;
use actor_secure::{Node, NodeError, OutletHandle};

pub use snapshot::{EntryKind, LinkRow, NodeRow, Rate, Snapshot, TreeEntry, TypeRow};

/// Beyond this many agents, the tree counts agents per type under each supervisor
/// instead of listing each one (see [`LiveView::aggregate_above`]).
pub const DEFAULT_AGGREGATE_ABOVE: usize = 500;

/// How many browsers may follow the live events at once (see [`LiveView::max_clients`]).
pub const DEFAULT_MAX_CLIENTS: usize = 32;

/// How long [`LiveViewHandle::stop`] lets open connections finish before it closes them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why the live view could not start.
#[non_exhaustive]
#[derive(Debug)]
pub enum WebError {
    /// The address to bind could not be bound (in use, not an address of this machine,
    /// not an address at all).
    Bind {
        /// The address as given.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The listener given to [`LiveView::listener`] has no local address.
    Listener(std::io::Error),
    /// The token is empty or holds characters a URL query or header cannot carry
    /// as they are (use letters, digits, `-`, `_`, `.` and `~`).
    Token,
    /// [`LiveView::serve`] was called outside a tokio runtime.
    NoRuntime,
    /// The view is to be served [`behind`](LiveView::behind) a node's access control,
    /// but listens on an address other machines can reach (it would be reachable
    /// without the node's say): it must listen on loopback.
    NotLoopback(SocketAddr),
    /// The node would not open the view's outlet: the name is taken
    /// ([`NodeError::AlreadyAnOutlet`]) or the policy does not parse
    /// ([`NodeError::Policy`]).
    Outlet(NodeError),
}

impl fmt::Display for WebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebError::Bind { addr, .. } => write!(f, "cannot bind the live view to {addr}"),
            WebError::Listener(_) => f.write_str("the live view's listener has no local address"),
            WebError::Token => {
                f.write_str("the live view's token must be non-empty letters, digits, '-', '_', '.' or '~'")
            }
            WebError::NoRuntime => f.write_str("the live view must be started inside a tokio runtime"),
            WebError::NotLoopback(addr) => write!(
                f,
                "the live view behind a node's access control must listen on loopback, not {addr}"
            ),
            WebError::Outlet(_) => f.write_str("the node would not open the live view's outlet"),
        }
    }
}

impl std::error::Error for WebError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebError::Bind { source, .. } | WebError::Listener(source) => Some(source),
            WebError::Outlet(source) => Some(source),
            WebError::Token | WebError::NoRuntime | WebError::NotLoopback(_) => None,
        }
    }
}

/// Where the live view listens: an address to bind, or a listener already bound.
#[derive(Debug)]
enum Bind {
    Addr(String),
    Listener(tokio::net::TcpListener),
}

/// The outlet through which other nodes reach the view (see [`LiveView::behind`]).
struct Behind {
    node: Node,
    outlet: String,
    policy: String,
}

/// Builds and starts a live view of a system (and, optionally, its nodes).
pub struct LiveView {
    system: System,
    nodes: Vec<Node>,
    bind: Bind,
    token: Option<String>,
    behind: Option<Behind>,
    aggregate_above: usize,
    max_clients: usize,
    counter: Option<(String, Box<snapshot::CounterFn>)>,
}

impl fmt::Debug for LiveView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveView")
            .field("nodes", &self.nodes.len())
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("behind", &self.behind.as_ref().map(|b| (&b.outlet, &b.policy)))
            .field("aggregate_above", &self.aggregate_above)
            .field("max_clients", &self.max_clients)
            .field("counter", &self.counter.as_ref().map(|(label, _)| label))
            .finish()
    }
}

impl LiveView {
    /// A live view of `system`, to bind to `127.0.0.1:0` (a free port on loopback only).
    pub fn new(system: &System) -> Self {
        LiveView {
            system: system.clone(),
            nodes: Vec::new(),
            bind: Bind::Addr("127.0.0.1:0".to_owned()),
            token: None,
            behind: None,
            aggregate_above: DEFAULT_AGGREGATE_ABOVE,
            max_clients: DEFAULT_MAX_CLIENTS,
            counter: None,
        }
    }

    /// Shows `node` too (repeatable): its identifier and address, and the cluster
    /// members it sees.
    pub fn node(mut self, node: &Node) -> Self {
        self.nodes.push(node.clone());
        self
    }

    /// Where to listen (default `127.0.0.1:0`). Any other interface than loopback makes
    /// the page reachable from the network: give it a [`token`](LiveView::token) then.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = Bind::Addr(addr.into());
        self
    }

    /// Serves on a listener already bound (tests: bind `127.0.0.1:0` and keep the port).
    pub fn listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.bind = Bind::Listener(listener);
        self
    }

    /// Requires `token` on every request, as `Authorization: Bearer <token>` or as the
    /// query parameter `?token=<token>` (which is how the page passes it on to its own
    /// requests); anything else is answered `401 Unauthorized`. [`LiveViewHandle::url`]
    /// then includes it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Serves the view behind `node`'s access control too: the view still listens on
    /// loopback only, and `node` opens the outlet `outlet` to it, so that operators on
    /// other nodes reach it through a portal ([`Node::inlet`], [`Node::connect_outlet`]):
    /// over the nodes' authenticated, encrypted link, each connection decided by
    /// `policy` from the connecting node's identity and credential attributes (as for
    /// any outlet: `resource.agent` is `"portal"`, `action.kind` is `"connect"`;
    /// denials are `troupe::audit` events on `node`). The outlet is under `policy` from
    /// its first connection (never under the node's default policy) and is removed when
    /// the view stops. With a [`token`](LiveView::token) too, requests through the
    /// portal must present it as well.
    ///
    /// The loopback port stays open to programs on this machine: give the view a token
    /// when they are not all trusted. [`serve`](LiveView::serve) fails with
    /// [`WebError::NotLoopback`] when the view is bound elsewhere, and with
    /// [`WebError::Outlet`] when the outlet cannot be opened (name in use, a policy
    /// that does not parse). Calling it again replaces the earlier outlet.
    /// [`node`](LiveView::node) is separate: call it too for the page to show `node`.
    pub fn behind(mut self, node: &Node, outlet: impl Into<String>, policy: impl Into<String>) -> Self {
        self.behind = Some(Behind {
            node: node.clone(),
            outlet: outlet.into(),
            policy: policy.into(),
        });
        self
    }

    /// Beyond `agents` agents (default [`DEFAULT_AGGREGATE_ABOVE`]), the tree shows one
    /// row per agent type under each supervisor instead of one per agent.
    pub fn aggregate_above(mut self, agents: usize) -> Self {
        self.aggregate_above = agents;
        self
    }

    /// How many browsers may follow the live events at once (default
    /// [`DEFAULT_MAX_CLIENTS`]); one more is answered `503 Service Unavailable`.
    pub fn max_clients(mut self, clients: usize) -> Self {
        self.max_clients = clients;
        self
    }

    /// Charts the rate of a counter the application keeps (read once a second), e.g.
    /// the messages its agents handled, labelled `label`. Without one, the chart shows
    /// the number of agents.
    pub fn counter(
        mut self,
        label: impl Into<String>,
        counter: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.counter = Some((label.into(), Box::new(counter)));
        self
    }

    /// Binds and starts serving on the current tokio runtime. The live view stops when
    /// [`LiveViewHandle::stop`] is called, when the handle is dropped, or when the
    /// system shuts down.
    pub async fn serve(self) -> Result<LiveViewHandle, WebError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(WebError::NoRuntime);
        }
        if let Some(token) = &self.token {
            let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
            if token.is_empty() || !token.chars().all(fine) {
                return Err(WebError::Token);
            }
        }
        let listener = match self.bind {
            Bind::Listener(listener) => listener,
            Bind::Addr(addr) => match tokio::net::TcpListener::bind(addr.as_str()).await {
                Ok(listener) => listener,
                Err(source) => return Err(WebError::Bind { addr, source }),
            },
        };
        let addr = listener.local_addr().map_err(WebError::Listener)?;
        // The outlet only once the listener is known; removed again when the view stops.
        let mut outlet = None;
        let mut on_stop: Option<server::OnStop> = None;
        if let Some(behind) = self.behind {
            if !addr.ip().is_loopback() {
                return Err(WebError::NotLoopback(addr));
            }
            let opened = behind
                .node
                .outlet_with_policy(&behind.outlet, addr.to_string(), &behind.policy)
                .map_err(WebError::Outlet)?;
            let (node, name) = (behind.node, behind.outlet);
            on_stop = Some(Box::new(move || {
                node.remove_outlet(&name);
            }));
            outlet = Some(opened);
        }
        let url = match &self.token {
            Some(token) => format!("http://{addr}/?token={token}"),
            None => format!("http://{addr}/"),
        };
        let config = server::Config {
            system: self.system,
            nodes: self.nodes,
            token: self.token,
            aggregate_above: self.aggregate_above,
            max_clients: self.max_clients,
            counter: self.counter,
            on_stop,
        };
        let (stop, task) = server::start(listener, config, STOP_GRACE);
        Ok(LiveViewHandle {
            addr,
            url,
            stop,
            task: Some(task),
            outlet,
        })
    }
}

/// A running live view. Dropping it stops the live view too (without waiting).
#[derive(Debug)]
pub struct LiveViewHandle {
    addr: SocketAddr,
    url: String,
    stop: Arc<server::Stop>,
    task: Option<tokio::task::JoinHandle<()>>,
    outlet: Option<OutletHandle>,
}

impl LiveViewHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address, with the token when there is one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The outlet other nodes reach the view through, when it is served
    /// [`behind`](LiveView::behind) a node's access control (e.g. to change its policy
    /// while the view runs). It is removed when the view stops.
    pub fn outlet(&self) -> Option<&OutletHandle> {
        self.outlet.as_ref()
    }

    /// True until the live view has been told to stop (by [`stop`](Self::stop), or by
    /// the system shutting down).
    pub fn is_running(&self) -> bool {
        !self.stop.is_stopped()
    }

    /// Stops serving: no new connections (the outlet of [`LiveView::behind`] is removed
    /// at once), live event streams end, and open connections get two seconds to
    /// finish before they are closed. Returns when it is done.
    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LiveViewHandle {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
