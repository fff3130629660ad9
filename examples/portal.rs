//! A TCP service reached through a portal: an outlet on the node next to the service,
//! an inlet on the node next to the client, every byte between them inside the nodes'
//! secure link, and the outlet's access policy deciding who may connect.
//!
//! The service here is a tiny line protocol ("SET key value", "GET key") so the example
//! runs anywhere; a database, an HTTP API or an MCP server over HTTP work the same way.
//! Both nodes run in this one process to keep it short; on two machines each node gets
//! its own `Identity::load_or_create("node.key")?`.
//!
//! ```text
//! cargo run --example portal
//! cargo run --example portal -- --serve     # keep the inlet open for `nc` or `telnet`
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;
use troupe::secure::{Node, NodeError, PortalConfig, TrustPolicy};

/// The service: a key-value store over TCP, one command per line. It knows nothing of
/// troupe.
async fn kv_service() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.splitn(3, ' ');
                    let answer = match (words.next(), words.next(), words.next()) {
                        (Some("SET"), Some(k), Some(v)) => {
                            store
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(k.into(), v.into());
                            "OK".to_owned()
                        }
                        (Some("GET"), Some(k), None) => store
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(k)
                            .cloned()
                            .unwrap_or_else(|| "(none)".into()),
                        _ => "ERR try SET key value or GET key".to_owned(),
                    };
                    if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Sends one line and reads one line back.
async fn ask(
    lines: &mut (
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    ),
    q: &str,
) -> std::io::Result<String> {
    lines.1.write_all(format!("{q}\n").as_bytes()).await?;
    let mut answer = String::new();
    lines.0.read_line(&mut answer).await?;
    Ok(answer.trim_end().to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = System::new();
    let service = kv_service().await?;
    println!("service:  a key-value store listens on {service} (plain TCP, knows nothing of troupe)");

    let (db_id, app_id) = (Identity::generate(), Identity::generate());
    let app_name = app_id.identifier();
    // ANCHOR: config
    let db_node = Node::builder()
        .identity(db_id)
        .trust(TrustPolicy::any())
        .portals(
            PortalConfig::default()
                .window(1 << 20) // bytes in flight per connection and way (default 256 KiB)
                .max_connections(1024) // per peer into outlets, and per inlet (default 256)
                .idle_timeout(Duration::from_secs(3600)) // default 5 minutes
                .connect_timeout(Duration::from_secs(2)), // outlet to service (default 5 s)
        )
        .start(&system)
        .await?;
    // ANCHOR_END: config
    let app_node = Node::builder()
        .identity(app_id)
        .trust(TrustPolicy::any())
        .start(&system)
        .await?;

    // ANCHOR: outlet
    // On the node next to the service: an outlet named "kv", and who may connect.
    db_node
        .outlet("kv", service.to_string())?
        .policy(format!(r#"subject.identifier = "{app_name}""#))?;
    // ANCHOR_END: outlet
    println!("db node:  outlet \"kv\" -> {service}, only for node {app_name}");

    // ANCHOR: inlet
    // On the node next to the client: a local port that leads to that outlet.
    let inlet = app_node.inlet("127.0.0.1:0", db_node.addr(), "kv").await?;
    // ANCHOR_END: inlet
    println!(
        "app node: inlet {} -> outlet \"kv\" on {}",
        inlet.addr(),
        db_node.addr()
    );

    // ANCHOR: client
    // Any TCP client uses the inlet as if it were the service.
    let (r, w) = TcpStream::connect(inlet.addr()).await?.into_split();
    let mut conn = (BufReader::new(r), w);
    for q in [
        "SET greeting hello-through-a-portal",
        "GET greeting",
        "GET nothing",
    ] {
        println!("client:   {q:<40} -> {}", ask(&mut conn, q).await?);
    }
    // ANCHOR_END: client

    // ANCHOR: denied
    // A node the policy does not name is refused, with a typed error.
    let stranger = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
    match stranger.connect_outlet(db_node.addr(), "kv").await {
        Err(NodeError::Denied) => println!("stranger: connect to \"kv\" -> denied by the outlet's policy"),
        Err(e) => return Err(format!("unexpected error: {e}").into()),
        Ok(_) => return Err("a stranger got through".into()),
    }
    // ANCHOR_END: denied

    if std::env::args().any(|a| a == "--serve") {
        println!(
            "serving: try `nc {}` then `GET greeting`; Ctrl-C to stop",
            inlet.addr()
        );
        tokio::signal::ctrl_c().await?;
    }
    stranger.shutdown().await;
    app_node.shutdown().await;
    db_node.shutdown().await;
    system.shutdown().await;
    println!("done");
    Ok(())
}
