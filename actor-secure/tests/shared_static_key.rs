//! An identity's handshakes share one Noise static key and binding for a while, and a
//! peer remembers the bindings it verified: what a raw peer sees of that, and that neither
//! lets a binding be used with any other key, or for longer than configured.

#[path = "support/peers.rs"]
mod peers;

use std::time::Duration;

use actor_secure::wire::{HandshakePayload, NOISE_PARAMS, PROLOGUE};
use actor_secure::{ChannelConfig, ChannelError, HandshakeError, Identity, SecureChannel, TrustPolicy};
use peers::*;
use tokio::io::DuplexStream;

/// What a raw peer learned about the other side: its static key and payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    static_key: [u8; 32],
    payload: Vec<u8>,
}

/// A raw responder signing with `me`; returns what the initiator sent in msg3.
async fn raw_responder_seeing(mut io: DuplexStream, me: &Identity) -> Seen {
    let (mut hs, s) = raw_state(NOISE_PARAMS, PROLOGUE, false);
    let mut buf = vec![0u8; 65535];
    let msg1 = read_frame(&mut io).await.unwrap();
    hs.read_message(&msg1, &mut buf).unwrap();
    let ours = HandshakePayload::sign(me, &s, now() + 60).encode();
    let n = hs.write_message(&ours, &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    let msg3 = read_frame(&mut io).await.unwrap();
    let n = hs.read_message(&msg3, &mut buf).unwrap();
    Seen {
        static_key: hs.get_remote_static().unwrap().try_into().unwrap(),
        payload: buf[..n].to_vec(),
    }
}

/// A raw initiator with its own fresh static key that sends `payload` in msg3; returns
/// what the responder sent in msg2.
async fn raw_initiator_seeing(mut io: DuplexStream, payload: impl FnOnce(&[u8; 32]) -> Vec<u8>) -> Seen {
    let (mut hs, s) = raw_state(NOISE_PARAMS, PROLOGUE, true);
    let mut buf = vec![0u8; 65535];
    let n = hs.write_message(&[], &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    let msg2 = read_frame(&mut io).await.unwrap();
    let got = hs.read_message(&msg2, &mut buf).unwrap();
    let seen = Seen {
        static_key: hs.get_remote_static().unwrap().try_into().unwrap(),
        payload: buf[..got].to_vec(),
    };
    let n = hs.write_message(&payload(&s), &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    seen
}

/// Alice (a real initiator) handshakes with a raw responder; what it saw of her.
async fn alice_as_seen(alice: &Identity, config: &ChannelConfig) -> Seen {
    let (c, s) = tokio::io::duplex(1 << 16);
    let carol = Identity::generate();
    let (ch, seen) = tokio::join!(
        SecureChannel::initiate_with(c, alice, TrustPolicy::any(), config),
        raw_responder_seeing(s, &carol),
    );
    ch.unwrap();
    seen
}

fn expiry(seen: &Seen) -> u64 {
    HandshakePayload::decode(&seen.payload).unwrap().expires_at()
}

#[tokio::test]
async fn an_initiators_handshakes_share_its_static_key_and_binding() {
    let (alice, other) = (Identity::generate(), Identity::generate());
    let first = alice_as_seen(&alice, &quick()).await;
    let second = alice_as_seen(&alice, &quick()).await;
    assert_eq!(first, second);
    let exp = expiry(&first);
    assert!(exp > now() + 60 && exp <= now() + 120, "{exp} vs {}", now());
    // Another identity has its own.
    assert_ne!(alice_as_seen(&other, &quick()).await.static_key, first.static_key);
}

#[tokio::test]
async fn a_responders_handshakes_share_its_static_key_and_binding() {
    let (bob, config) = (Identity::generate(), quick());
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (c, s) = tokio::io::duplex(1 << 16);
        let mallory = Identity::generate();
        let (ch, got) = tokio::join!(
            SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &config),
            raw_initiator_seeing(c, honest(&mallory)),
        );
        ch.unwrap();
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn a_shared_binding_never_outlives_what_the_config_asks() {
    let alice = Identity::generate();
    let long = alice_as_seen(&alice, &quick().binding_validity(Duration::from_secs(600))).await;
    let short = alice_as_seen(&alice, &quick().binding_validity(Duration::from_secs(120))).await;
    assert!(expiry(&long) > now() + 300);
    assert!(expiry(&short) <= now() + 120);
    assert_ne!(
        long.static_key, short.static_key,
        "a fresh key for the shorter binding"
    );
}

#[tokio::test]
async fn a_verified_binding_does_not_vouch_for_another_static_key() {
    // Bob accepts Alice and remembers her binding. Mallory, who saw that binding (Alice
    // sends it to anyone she connects to), presents it with her own static key.
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let alice_binding = alice_as_seen(&alice, &quick()).await;
    let (c, s) = tokio::io::duplex(1 << 16);
    let (a, b) = pair(c, s, &alice, &bob, &quick()).await;
    assert_eq!(b.unwrap().peer(), &alice.identifier());
    drop(a);
    let (c, s) = tokio::io::duplex(1 << 16);
    let (replayed, config) = (alice_binding.payload.clone(), quick());
    let (r, _) = tokio::join!(
        SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &config),
        raw_initiator_seeing(c, move |_own| replayed),
    );
    match r {
        Err(ChannelError::Handshake(e)) => assert_eq!(e, HandshakeError::BadSignature),
        other => panic!("expected a bad signature, got {other:?}"),
    }
    // Bob still accepts Alice herself.
    let (c, s) = tokio::io::duplex(1 << 16);
    let (_a, b) = pair(c, s, &alice, &bob, &quick()).await;
    assert_eq!(b.unwrap().peer(), &alice.identifier());
}
