//! [`McpClient`]: an agent that wraps one MCP server.
//!
//! The agent is written by hand rather than with `#[agent]`: its `call_tool` takes
//! `impl Into<String>` (so `fs.call_tool("echo", ..)` works with a literal) and sends the
//! request from the caller's task through the instance's live connection (`LIVE`), and
//! it needs one message only its own watcher may send (the server went away); generated
//! code can do none of these.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use actor_core::__private::{AgentClient, RawRef};
use actor_core::{ActorId, Agent, CallError, Context, Request, StopReason};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{Peer, RoleClient, RunningService, RunningServiceCancellationToken};
use rmcp::ServiceExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::{McpError, ToolInfo, ToolOutput};

/// A byte stream an [`McpClient`] can speak MCP over (see [`McpClient::stream`]).
pub trait McpStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> McpStream for T {}

/// How long [`McpClient`] waits for the handshake with a server it has just started.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for the server process to exit (rmcp closes its stdin, waits,
/// sends SIGTERM, waits, then kills it: 3 s per step).
/// The live connection of each local `McpClient` instance, by agent: a call looks its
/// connection up here and sends its request to the server from the calling task,
/// without a message to the agent (which would cost a task wake-up per call). An
/// agent without an entry (starting, restarting, stopped) is asked by message instead.
static LIVE: LazyLock<Mutex<HashMap<ActorId, Live>>> = LazyLock::new(Default::default);

#[derive(Clone)]
struct Live {
    conn: u64,
    peer: Peer<RoleClient>,
    timeout: Option<Duration>,
}

fn live(id: Option<ActorId>) -> Option<(Peer<RoleClient>, Option<Duration>)> {
    let id = id?;
    let map = LIVE.lock().ok()?;
    map.get(&id).map(|l| (l.peer.clone(), l.timeout))
}

/// Forgets the entry of `agent` if it is still the one of connection `conn`.
fn forget(agent: ActorId, conn: u64) {
    if let Ok(mut map) = LIVE.lock() {
        if map.get(&agent).is_some_and(|l| l.conn == conn) {
            map.remove(&agent);
        }
    }
}

/// Numbers connections, so a watcher's message names the one it watched.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// An agent that wraps one MCP server: started as a child process over stdio
/// ([`McpClient::stdio`]), reached over streamable HTTP ([`McpClient::http`]), or spoken
/// to over any byte stream ([`McpClient::stream`]).
///
/// Each instance connects when it starts (a child process is started then, and the MCP
/// handshake done) and disconnects when it stops (the process is stopped and reaped).
/// When the connection closes by itself (the server process died), the agent crashes
/// with [`StopReason::Error`], so under a supervisor it is restarted with a new
/// connection; calls queued meanwhile go to the new instance.
///
/// ```no_run
/// use serde_json::json;
/// use troupe::mcp::McpClient;
/// use troupe::prelude::*;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let system = System::new();
/// let everything = system.spawn(McpClient::stdio(
///     "node",
///     ["node_modules/.bin/mcp-server-everything", "stdio"],
/// )?);
/// let tools = everything.list_tools().await??;
/// let out = everything.call_tool("echo", json!({"message": "hi"})).await??;
/// assert_eq!(out.text(), "Echo: hi");
/// system.shutdown().await; // stops the server process too
/// # let _ = tools; Ok(()) }
/// ```
///
/// Each call gives `Result<Result<T, McpError>, CallError>`: the outer error is about
/// reaching the agent, the inner one about the MCP server.
pub struct McpClient {
    target: Target,
    call_timeout: Option<Duration>,
    conn: Option<Connection>,
}

/// Where the server is.
#[derive(Clone)]
enum Target {
    Stdio {
        program: PathBuf,
        args: Vec<OsString>,
        envs: Vec<(OsString, OsString)>,
        cwd: Option<PathBuf>,
        quiet: bool,
    },
    Http {
        url: String,
    },
    /// Taken by the first instance that starts: a stream serves once.
    Stream(Arc<Mutex<Option<Box<dyn McpStream>>>>),
}

/// A live connection: the peer to send requests through, and the task that owns the
/// rmcp service and notices when it ends.
struct Connection {
    /// Tells this connection's `ServerGone` from a late one of an earlier instance.
    id: u64,
    /// The agent that owns it (its entry in `LIVE`).
    agent: ActorId,
    peer: Peer<RoleClient>,
    pid: Option<u32>,
    server: Option<String>,
    closing: Arc<AtomicBool>,
    cancel: Option<RunningServiceCancellationToken>,
    watcher: Option<JoinHandle<()>>,
}

impl Connection {
    /// Stops the service (closing the transport; for a child process: close its stdin,
    /// wait, SIGTERM, kill) and waits until it is done and the process reaped.
    async fn close(&mut self) {
        forget(self.agent, self.id);
        self.closing.store(true, Ordering::SeqCst);
        if let Some(token) = self.cancel.take() {
            token.cancel();
        }
        if let Some(watcher) = self.watcher.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, watcher).await;
        }
    }
}

impl Drop for Connection {
    // A killed agent never runs `on_stop`: cancelling here still ends the service, and
    // rmcp then kills and reaps the child process.
    fn drop(&mut self) {
        forget(self.agent, self.id);
        self.closing.store(true, Ordering::SeqCst);
        if let Some(token) = self.cancel.take() {
            token.cancel();
        }
    }
}

impl McpClient {
    /// A client that starts `program` with `args` as a child process and speaks MCP over
    /// its stdin and stdout (the server's stderr is passed through). Each instance of the
    /// agent starts its own process when it starts, and stops it when it stops.
    ///
    /// Fails with [`McpError::Spawn`] when `program` is neither a path to a file nor found
    /// on `PATH`.
    pub fn stdio<I, S>(program: impl Into<PathBuf>, args: I) -> Result<Self, McpError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let program = program.into();
        if !program_exists(&program) {
            return Err(McpError::Spawn(format!(
                "program `{}` not found (neither a file nor on PATH)",
                program.display()
            )));
        }
        Ok(McpClient::with_target(Target::Stdio {
            program,
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
            cwd: None,
            quiet: false,
        }))
    }

    /// A client that reaches an MCP server over streamable HTTP at `url`
    /// (`http://127.0.0.1:3001/mcp`). Plain `http://` only: no TLS stack is built in.
    pub fn http(url: impl Into<String>) -> Result<Self, McpError> {
        let url = url.into();
        if !url.starts_with("http://") {
            return Err(McpError::Spawn(format!("`{url}` is not an http:// URL")));
        }
        Ok(McpClient::with_target(Target::Http { url }))
    }

    /// A client that speaks MCP over `stream` (e.g. one end of `tokio::io::duplex`). A
    /// stream serves one instance: under a supervisor, build a new client with a new
    /// stream in the factory.
    pub fn stream(stream: impl McpStream) -> Self {
        McpClient::with_target(Target::Stream(Arc::new(Mutex::new(Some(Box::new(stream))))))
    }

    /// Bounds each call to the server: after `timeout` the request is cancelled and the
    /// call gives [`McpError::Timeout`]. By default calls wait as long as the connection
    /// lives.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Sets an environment variable of the server process ([`McpClient::stdio`] only).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        if let Target::Stdio { envs, .. } = &mut self.target {
            envs.push((key.into(), value.into()));
        }
        self
    }

    /// Discards what the server process writes to its stderr (by default it goes to this
    /// process's stderr) ([`McpClient::stdio`] only).
    pub fn quiet(mut self) -> Self {
        if let Target::Stdio { quiet, .. } = &mut self.target {
            *quiet = true;
        }
        self
    }

    /// Sets the working directory of the server process ([`McpClient::stdio`] only).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Target::Stdio { cwd, .. } = &mut self.target {
            *cwd = Some(dir.into());
        }
        self
    }

    fn with_target(target: Target) -> Self {
        McpClient {
            target,
            call_timeout: None,
            conn: None,
        }
    }

    async fn connect(&self, myself: actor_core::ActorRef<McpClient>) -> Result<Connection, McpError> {
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("troupe", env!("CARGO_PKG_VERSION")),
        );
        let mut pid = None;
        let handshake = async {
            match &self.target {
                Target::Stdio {
                    program,
                    args,
                    envs,
                    cwd,
                    quiet,
                } => {
                    let mut cmd = tokio::process::Command::new(program);
                    cmd.args(args).envs(envs.iter().map(|(k, v)| (k, v)));
                    if let Some(dir) = cwd {
                        cmd.current_dir(dir);
                    }
                    let (child, _) = rmcp::transport::TokioChildProcess::builder(cmd)
                        .stderr(if *quiet { Stdio::null() } else { Stdio::inherit() })
                        .spawn()
                        .map_err(|e| McpError::Spawn(format!("{}: {e}", program.display())))?;
                    pid = child.id();
                    config.serve(child).await.map_err(handshake_error)
                }
                Target::Http { url } => {
                    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.as_str());
                    config.serve(transport).await.map_err(handshake_error)
                }
                Target::Stream(slot) => {
                    let stream = slot.lock().ok().and_then(|mut s| s.take()).ok_or_else(|| {
                        McpError::Spawn("the stream was used by an earlier instance".into())
                    })?;
                    config.serve(stream).await.map_err(handshake_error)
                }
            }
        };
        let running: RunningService<RoleClient, ClientConfig> =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(McpError::Handshake(format!(
                        "no answer within {HANDSHAKE_TIMEOUT:?}"
                    )))
                }
            };
        let peer = running.peer().clone();
        let server = running.peer_info().and_then(|info| {
            info.server_info
                .as_ref()
                .map(|s| format!("{} {}", s.name, s.version))
        });
        let cancel = running.cancellation_token();
        let myself_id = myself.id();
        let closing = Arc::new(AtomicBool::new(false));
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let watcher = {
            let closing = closing.clone();
            tokio::spawn(async move {
                let reason = running.waiting().await;
                if !closing.load(Ordering::SeqCst) {
                    let why = match reason {
                        Ok(rmcp::service::QuitReason::JoinError(e)) | Err(e) => {
                            format!("its task failed: {e}")
                        }
                        Ok(_) => "it closed the connection".to_string(),
                    };
                    let msg = Msg(Inner::ServerGone { conn: id, why });
                    let _ = Request::new(&myself.raw, msg, |_| None::<()>).cast().await;
                }
            })
        };
        Ok(Connection {
            id,
            agent: myself_id,
            peer,
            pid,
            server,
            closing,
            cancel: Some(cancel),
            watcher: Some(watcher),
        })
    }

    fn peer(&self) -> Result<Peer<RoleClient>, McpError> {
        self.conn
            .as_ref()
            .map(|c| c.peer.clone())
            .ok_or(McpError::TransportClosed)
    }
}

/// A copy that connects on its own when started (the connection is not shared): what a
/// supervisor's factory returns, `move || client.clone()`. A clone of a
/// [`McpClient::stream`] shares its one-time stream.
impl Clone for McpClient {
    fn clone(&self) -> Self {
        McpClient {
            target: self.target.clone(),
            call_timeout: self.call_timeout,
            conn: None,
        }
    }
}

fn handshake_error(e: rmcp::service::ClientInitializeError) -> McpError {
    McpError::Handshake(e.to_string())
}

/// True when `program` names a file, or a file on `PATH` if it is a bare name.
fn program_exists(program: &std::path::Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

impl fmt::Debug for McpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("McpClient");
        match &self.target {
            Target::Stdio { program, args, .. } => d.field("program", program).field("args", args),
            Target::Http { url } => d.field("url", url),
            Target::Stream(_) => d.field("stream", &".."),
        };
        if let Some(conn) = &self.conn {
            d.field("pid", &conn.pid).field("server", &conn.server);
        }
        d.finish_non_exhaustive()
    }
}

/// Runs `fut` within `timeout`, if there is one (dropping an rmcp request future cancels
/// the request on the server).
async fn bounded<T>(
    timeout: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>,
) -> Result<T, McpError> {
    match timeout {
        Some(d) => match tokio::time::timeout(d, fut).await {
            Ok(r) => r.map_err(McpError::from),
            Err(_) => Err(McpError::Timeout(d)),
        },
        None => fut.await.map_err(McpError::from),
    }
}

async fn list_tools(peer: Peer<RoleClient>, timeout: Option<Duration>) -> Result<Vec<ToolInfo>, McpError> {
    let tools = bounded(timeout, peer.list_all_tools()).await?;
    Ok(tools.into_iter().map(ToolInfo::from_rmcp).collect())
}

async fn call_tool(
    peer: Peer<RoleClient>,
    timeout: Option<Duration>,
    name: String,
    arguments: Value,
) -> Result<ToolOutput, McpError> {
    let arguments = match arguments {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => {
            return Err(McpError::InvalidArguments(format!(
                "expected a JSON object, got `{other}`"
            )))
        }
    };
    let mut params = CallToolRequestParams::new(name);
    if let Some(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = bounded(timeout, peer.call_tool(params)).await?;
    ToolOutput::from_rmcp(result)
}

// ---- The agent: messages, replies, the typed client. ----

/// A message to an [`McpClient`] (sent by [`McpClientRef`]'s methods).
pub struct Msg(Inner);

enum Inner {
    /// The connection to send a request through (the caller sends it).
    Connection,
    ServerPid,
    ServerName,
    /// From the connection's watcher: the service ended without being asked to.
    ServerGone {
        conn: u64,
        why: String,
    },
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Connection => f.write_str("Connection"),
            Inner::ServerPid => f.write_str("ServerPid"),
            Inner::ServerName => f.write_str("ServerName"),
            Inner::ServerGone { why, .. } => f.debug_tuple("ServerGone").field(why).finish(),
        }
    }
}

/// A reply of an [`McpClient`].
#[derive(Debug)]
pub struct McpReply(ReplyInner);

#[derive(Debug)]
enum ReplyInner {
    Connection(Result<(Peer<RoleClient>, Option<Duration>), McpError>),
    Pid(Option<u32>),
    Name(Option<String>),
}

/// The typed client of [`McpClient`]: `ActorRef<McpClient>` dereferences to it, so these
/// are methods of the reference. Each returns a request: `.await` it to call,
/// `.timeout(d)` to bound the wait.
pub struct McpClientRef {
    raw: RawRef<McpClient>,
}

impl Clone for McpClientRef {
    fn clone(&self) -> Self {
        McpClientRef {
            raw: self.raw.clone(),
        }
    }
}

impl fmt::Debug for McpClientRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.raw, f)
    }
}

impl AgentClient<McpClient> for McpClientRef {
    fn troupe_from_raw(raw: RawRef<McpClient>) -> Self {
        McpClientRef { raw }
    }
    fn troupe_raw(&self) -> &RawRef<McpClient> {
        &self.raw
    }
}

impl McpClientRef {
    /// Lists the server's tools (all pages of `tools/list`).
    pub fn list_tools(&self) -> McpCall<Vec<ToolInfo>> {
        let this = self.clone();
        McpCall::new(async move {
            let (peer, timeout) = match this.connection().await? {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            Ok(list_tools(peer, timeout).await)
        })
    }

    /// Calls the tool `name` with `arguments` (a JSON object, or `null` for none).
    /// A tool that reports a failure gives [`McpError::Tool`].
    pub fn call_tool(&self, name: impl Into<String>, arguments: Value) -> McpCall<ToolOutput> {
        let this = self.clone();
        let name = name.into();
        McpCall::new(async move {
            let (peer, timeout) = match this.connection().await? {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            Ok(call_tool(peer, timeout, name, arguments).await)
        })
    }

    /// The process id of the server this instance started ([`McpClient::stdio`] only).
    pub fn server_pid(&self) -> Request<McpClient, Option<u32>> {
        Request::new(&self.raw, Msg(Inner::ServerPid), |r| match r.0 {
            ReplyInner::Pid(p) => Some(p),
            _ => None,
        })
    }

    /// The server's name and version, as it gave them in the handshake.
    pub fn server_name(&self) -> Request<McpClient, Option<String>> {
        Request::new(&self.raw, Msg(Inner::ServerName), |r| match r.0 {
            ReplyInner::Name(n) => Some(n),
            _ => None,
        })
    }

    /// The agent's current connection, for the caller to send its request through: from
    /// `LIVE` while the agent is up, else by asking the agent (which waits for a
    /// restarting agent, and fails for a stopped one).
    async fn connection(&self) -> Result<Result<(Peer<RoleClient>, Option<Duration>), McpError>, CallError> {
        if let Some(live) = live(self.raw.local_id()) {
            return Ok(Ok(live));
        }
        Request::new(&self.raw, Msg(Inner::Connection), |r| match r.0 {
            ReplyInner::Connection(c) => Some(c),
            _ => None,
        })
        .await
    }
}

type CallFuture<T> = Pin<Box<dyn Future<Output = Result<Result<T, McpError>, CallError>> + Send>>;

/// A call to an MCP server through an [`McpClient`] reference: `.await` it for
/// `Result<Result<T, McpError>, CallError>` (the outer error about reaching the agent,
/// the inner one about the server), and `.timeout(d)` to bound the whole call
/// (`CallError::Timeout`).
///
/// The call asks the agent for its connection and then sends the request to the
/// server from the calling task: the agent is never busy while a tool runs, and calls
/// are concurrent.
#[must_use = "a call does nothing until it is awaited"]
pub struct McpCall<T> {
    fut: CallFuture<T>,
}

impl<T: Send + 'static> McpCall<T> {
    fn new(fut: impl Future<Output = Result<Result<T, McpError>, CallError>> + Send + 'static) -> Self {
        McpCall { fut: Box::pin(fut) }
    }

    /// Bounds the whole call, from asking the agent to the server's answer: after
    /// `timeout` it gives `Err(CallError::Timeout)` (and the request is cancelled on the
    /// server).
    pub fn timeout(self, timeout: Duration) -> Self {
        let fut = self.fut;
        McpCall::new(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(result) => result,
                Err(_) => Err(CallError::Timeout),
            }
        })
    }
}

impl<T> Future for McpCall<T> {
    type Output = Result<Result<T, McpError>, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for McpCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("McpCall")
    }
}

impl Agent for McpClient {
    type Msg = Msg;
    type Reply = McpReply;
    type Client = McpClientRef;

    const EAGER_START: bool = true;

    async fn on_start(&mut self, ctx: &mut Context<Self>) {
        match self.connect(ctx.myself().clone()).await {
            Ok(conn) => {
                if let Ok(mut map) = LIVE.lock() {
                    let live = Live {
                        conn: conn.id,
                        peer: conn.peer.clone(),
                        timeout: self.call_timeout,
                    };
                    map.insert(conn.agent, live);
                }
                self.conn = Some(conn);
            }
            Err(e) => ctx.stop_with(StopReason::Error(e.to_string())),
        }
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Option<McpReply> {
        match msg.0 {
            Inner::Connection => Some(McpReply(ReplyInner::Connection(
                self.peer().map(|peer| (peer, self.call_timeout)),
            ))),
            Inner::ServerPid => Some(McpReply(ReplyInner::Pid(self.conn.as_ref().and_then(|c| c.pid)))),
            Inner::ServerName => Some(McpReply(ReplyInner::Name(
                self.conn.as_ref().and_then(|c| c.server.clone()),
            ))),
            Inner::ServerGone { conn, why } => {
                if self.conn.as_ref().is_some_and(|c| c.id == conn) {
                    ctx.stop_with(StopReason::Error(format!("the MCP server went away: {why}")));
                }
                None
            }
        }
    }

    async fn on_stop(&mut self, _reason: &StopReason, _ctx: &mut Context<Self>) {
        if let Some(mut conn) = self.conn.take() {
            conn.close().await;
        }
    }
}
