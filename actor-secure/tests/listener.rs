//! `SecureListener` over real TCP on 127.0.0.1: silent floods from one source do not
//! starve others, silent connections are dropped early, and only trusted peers are
//! accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actor_secure::{ChannelError, Identity, ListenerConfig, SecureChannel, SecureListener, TrustPolicy};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A connection from the loopback address `from` (the whole of 127.0.0.0/8 is local).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// An echo server on a listener; returns its address and identity.
async fn echo_server(trusted: TrustPolicy, config: ListenerConfig) -> (SocketAddr, Arc<Identity>) {
    let identity = Arc::new(Identity::generate());
    let mut listener = SecureListener::bind_with("127.0.0.1:0", identity.clone(), trusted, config)
        .await
        .unwrap();
    let addr = listener.local_addr();
    tokio::spawn(async move {
        while let Ok((mut ch, _)) = listener.accept().await {
            tokio::spawn(async move {
                while let Ok(msg) = ch.recv().await {
                    if ch.send(&msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, identity)
}

async fn round_trip(addr: SocketAddr, client: &Identity, server: &Identity) -> Result<(), ChannelError> {
    let tcp = connect_from([127, 0, 0, 1], addr).await?;
    let mut ch = SecureChannel::initiate(tcp, client, TrustPolicy::allow([server.identifier()])).await?;
    ch.send(b"ping").await?;
    assert_eq!(&ch.recv().await?[..], b"ping");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_flood_from_one_source_does_not_starve_other_clients() {
    let client = Identity::generate();
    let (addr, server) = echo_server(
        TrustPolicy::allow([client.identifier()]),
        ListenerConfig::default(),
    )
    .await;
    // 64 connections that never say anything, all from 127.0.0.2: as many as there are
    // handshake slots.
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(connect_from([127, 0, 0, 2], addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        let done = tokio::time::timeout(Duration::from_secs(5), round_trip(addr, &client, &server)).await;
        assert!(matches!(done, Ok(Ok(()))), "honest client {i} failed: {done:?}");
    }
    // The silent ones are dropped after the first-message timeout (3 s), not the
    // handshake timeout (10 s).
    let mut byte = [0u8; 1];
    let first = &mut silent[0];
    let ended = tokio::time::timeout(Duration::from_secs(5), first.read(&mut byte)).await;
    assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_the_clients_own_address_do_not_take_handshake_slots() {
    // The attack as reported: 64 silent connections (as many as there are handshake
    // slots), here from the very address the honest client uses.
    let client = Identity::generate();
    let (addr, server) = echo_server(
        TrustPolicy::allow([client.identifier()]),
        ListenerConfig::default(),
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(connect_from([127, 0, 0, 1], addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        let done = tokio::time::timeout(Duration::from_secs(5), round_trip(addr, &client, &server)).await;
        assert!(matches!(done, Ok(Ok(()))), "honest client {i} failed: {done:?}");
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_peers_never_come_out_of_accept() {
    let (good, bad) = (Identity::generate(), Identity::generate());
    let server = Arc::new(Identity::generate());
    let mut listener = SecureListener::bind(
        "127.0.0.1:0",
        server.clone(),
        TrustPolicy::allow([good.identifier()]),
    )
    .await
    .unwrap();
    let addr = listener.local_addr();
    let to_server = TrustPolicy::allow([server.identifier()]);
    // The untrusted client completes its half of the handshake, then sees the
    // connection end.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ch = SecureChannel::initiate(tcp, &bad, to_server.clone())
        .await
        .unwrap();
    let refused = ch.recv().await;
    assert!(
        matches!(refused, Err(ChannelError::ConnectionLost)),
        "{refused:?}"
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ok = SecureChannel::initiate(tcp, &good, to_server).await.unwrap();
    let (ch, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ch.peer(),
        &good.identifier(),
        "the first accepted channel is the trusted one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_listener_stops_accepting() {
    let server = Arc::new(Identity::generate());
    let listener = SecureListener::bind("127.0.0.1:0", server, TrustPolicy::any())
        .await
        .unwrap();
    let addr = listener.local_addr();
    drop(listener);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}
