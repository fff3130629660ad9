//! Two identities, a secure channel over loopback TCP, an echo, and a refused impostor.
//!
//! ```text
//! cargo run --example secure_echo
//! ```

// ANCHOR: all
use tokio::net::{TcpListener, TcpStream};
use troupe::secure::{ChannelError, Identity, SecureChannel, TrustPolicy};

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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_task = tokio::spawn(async move {
        // Only the known client may talk to this server.
        let trusted = TrustPolicy::allow([client_id]);
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await?;
            match SecureChannel::respond(tcp, &server, trusted.clone()).await {
                Ok(mut ch) => {
                    println!("server: authenticated {}", ch.peer());
                    loop {
                        match ch.recv().await {
                            Ok(msg) => ch.send(&msg).await?, // echo
                            Err(ChannelError::Closed) => break,
                            Err(e) => return Err(e),
                        }
                    }
                    println!("server: the client closed the channel");
                }
                // The refused peer learns nothing: its connection just closes.
                Err(e) => println!("server: refused a connection ({e})"),
            }
        }
        Ok::<_, ChannelError>(())
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
    let attempt = SecureChannel::initiate(tcp, &impostor, TrustPolicy::any()).await;
    let refused = match attempt {
        Err(_) => true,
        // The initiator sends its identity last, so it may finish first: the refusal
        // then shows on its first receive.
        Ok(mut ch) => ch.recv().await.is_err(),
    };
    println!("impostor: refused = {refused}");
    // ANCHOR_END: impostor

    server_task.await??;
    assert!(refused);
    Ok(())
}
// ANCHOR_END: all
