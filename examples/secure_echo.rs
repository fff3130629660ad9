//! Two identities, a secure channel over loopback TCP, an echo, and a refused impostor.
//!
//! ```text
//! cargo run --example secure_echo
//! ```

// ANCHOR: all
use std::sync::Arc;

use tokio::net::TcpStream;
use troupe::secure::{ChannelError, Identity, SecureChannel, SecureListener, TrustPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: identities
    // Each side has a long-term identity. A server would keep its own on disk with
    // `Identity::load_or_create("server.key")?` so its identifier never changes.
    let server = Identity::generate();
    let client = Identity::generate();
    let server_id = server.identifier();
    let client_id = client.identifier();
    println!("server is {server_id}");
    println!("client is {client_id}");
    // ANCHOR_END: identities

    // ANCHOR: server
    // Only the known client may talk to this server. The listener runs every handshake
    // in a task of its own, bounds them (in total and per source address) and drops
    // connections that stay silent, so no client can hold up another.
    let server = Arc::new(server);
    let mut listener = SecureListener::bind("127.0.0.1:0", server, TrustPolicy::allow([client_id])).await?;
    let addr = listener.local_addr();
    tokio::spawn(async move {
        while let Ok((mut ch, from)) = listener.accept().await {
            println!("server: authenticated {} from {from}", ch.peer());
            // A task per channel: a slow or idle peer never blocks the others.
            tokio::spawn(async move {
                loop {
                    match ch.recv().await {
                        Ok(msg) => {
                            if ch.send(&msg).await.is_err() {
                                break; // echo
                            }
                        }
                        Err(ChannelError::Closed) => {
                            println!("server: the client closed the channel");
                            break;
                        }
                        Err(e) => {
                            println!("server: channel ended ({e})");
                            break;
                        }
                    }
                }
            });
        }
    });
    // ANCHOR_END: server

    // ANCHOR: client
    // The client accepts only the server it expects.
    let tcp = TcpStream::connect(addr).await?;
    let mut ch = SecureChannel::initiate(tcp, &client, TrustPolicy::allow([server_id])).await?;
    ch.send(b"hello over an encrypted, authenticated channel").await?;
    let echo = ch.recv().await?;
    println!("client: echo says {:?}", String::from_utf8_lossy(&echo));
    ch.close().await?;
    // ANCHOR_END: client

    // ANCHOR: impostor
    // An impostor with an identity the server does not trust is refused during the
    // handshake, before any of its bytes reach the application.
    let impostor = Identity::generate();
    let tcp = TcpStream::connect(addr).await?;
    let attempt = SecureChannel::initiate(tcp, &impostor, TrustPolicy::allow([server_id])).await;
    let refused = match attempt {
        Err(_) => true,
        // The initiator sends its identity last, so it may finish first: the refusal
        // then shows on its first receive.
        Ok(mut ch) => ch.recv().await.is_err(),
    };
    println!("impostor: refused = {refused}");
    // ANCHOR_END: impostor

    assert!(refused);
    Ok(())
}
// ANCHOR_END: all
