//! Adversarial handshake cases (H1-H16 in the security notes). Each fails if its defence
//! is removed.

#[path = "support/mitm.rs"]
mod mitm;
#[path = "support/peers.rs"]
mod peers;

use std::time::Duration;

use actor_secure::wire::{HandshakePayload, MSG1_LEN, MSG2_LEN, NOISE_PARAMS, PROLOGUE};
use actor_secure::{
    ChannelConfig, ChannelError, HandshakeError, HandshakeLimiter, Identity, PayloadError, SecureChannel,
    TrustPolicy,
};
use mitm::{flip, mitm, pass, Act};
use peers::*;
use tokio::io::AsyncWriteExt;

fn handshake_err(r: Result<impl Sized, ChannelError>) -> HandshakeError {
    match r {
        Err(ChannelError::Handshake(e)) => e,
        Err(other) => panic!("expected a handshake error, got {other:?}"),
        Ok(_) => panic!("expected a handshake error, got a channel"),
    }
}

#[tokio::test]
async fn honest_peers_authenticate_each_other() {
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let (c, s) = tokio::io::duplex(1 << 16);
    let (a, b) = pair(c, s, &alice, &bob, &quick()).await;
    assert_eq!(a.unwrap().peer(), &bob.identifier());
    assert_eq!(b.unwrap().peer(), &alice.identifier());
}

#[tokio::test]
async fn truncated_msg1_is_refused_before_any_crypto() {
    let bob = Identity::generate();
    let (mut c, s) = tokio::io::duplex(1 << 16);
    write_frame(&mut c, &[7u8; MSG1_LEN - 1]).await;
    let r = SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadLength);
}

#[tokio::test]
async fn truncated_msg2_is_refused() {
    let alice = Identity::generate();
    let m = mitm(
        pass(),
        Box::new(|_, mut f, _| {
            f.truncate(f.len() - 1);
            let len = (f.len() - 2) as u16;
            f[..2].copy_from_slice(&len.to_be_bytes());
            vec![Act::Send(f)]
        }),
    );
    let bob = Identity::generate();
    let server = tokio::spawn(async move {
        SecureChannel::respond_with(m.server, &bob, TrustPolicy::any(), &quick()).await
    });
    let r = SecureChannel::initiate_with(m.client, &alice, TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadLength);
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn oversized_length_prefix_is_refused_without_waiting_for_the_body() {
    let bob = Identity::generate();
    let (mut c, s) = tokio::io::duplex(1 << 16);
    c.write_all(&u16::MAX.to_be_bytes()).await.unwrap(); // and no body ever
    let config = ChannelConfig::default().handshake_timeout(Duration::from_secs(3600));
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &config),
    )
    .await
    .expect("refused at once, not after a timeout");
    assert_eq!(handshake_err(r), HandshakeError::BadLength);
}

#[tokio::test]
async fn a_bit_flipped_anywhere_in_any_handshake_message_prevents_both_channels() {
    // (message index in its direction, to_server?) for msg1, msg2 and msg3.
    let cases = [(0usize, true, MSG1_LEN), (0, false, MSG2_LEN), (1, true, 0)];
    for (target, to_server, len) in cases {
        let len = if len == 0 { 169 } else { len };
        for offset in [0, 1, 31, 32, 33, 63, 64, 80, len / 2, len - 17, len - 1] {
            if offset >= len {
                continue;
            }
            let rule = move |i: usize, f: Vec<u8>, _: &mitm::Log| {
                vec![Act::Send(if i == target { flip(f, offset) } else { f })]
            };
            let (to_s, to_c): (mitm::Rule, mitm::Rule) = if to_server {
                (Box::new(rule), pass())
            } else {
                (pass(), Box::new(rule))
            };
            let m = mitm(to_s, to_c);
            let (alice, bob) = (Identity::generate(), Identity::generate());
            let (a, b) = pair(m.client, m.server, &alice, &bob, &quick()).await;
            let msg = if to_server { 1 + 2 * target } else { 2 };
            assert!(
                b.is_err(),
                "flip in msg{msg} at {offset} let bob's channel through"
            );
            match a {
                // Only msg3 is checked after Alice has finished (she sends it last); her
                // channel then dies on first use, before delivering anything.
                Ok(mut a) if msg == 3 => assert!(a.recv().await.is_err()),
                Ok(_) => panic!("flip in msg{msg} at {offset} let alice's channel through"),
                Err(_) => {}
            }
        }
    }
}

#[tokio::test]
async fn a_different_prologue_or_suite_fails_at_the_first_authenticated_message() {
    let alice = Identity::generate();
    let other_version = b"troupe/secure-channel/0 Noise_XX_25519_ChaChaPoly_BLAKE2s";
    for (params, prologue) in [
        (NOISE_PARAMS, &other_version[..]),
        ("Noise_XX_25519_ChaChaPoly_BLAKE2b", PROLOGUE),
        ("Noise_XX_25519_ChaChaPoly_BLAKE2s", b"" as &[u8]),
    ] {
        let (c, s) = tokio::io::duplex(1 << 16);
        let mallory = Identity::generate();
        let raw = tokio::spawn(async move { raw_responder(s, params, prologue, honest(&mallory)).await });
        let r = SecureChannel::initiate_with(c, &alice, TrustPolicy::any(), &quick()).await;
        assert_eq!(handshake_err(r), HandshakeError::Decrypt, "{params}");
        drop(raw.await);
    }
}

#[tokio::test]
async fn an_identity_signature_over_another_static_key_is_refused_both_ways() {
    let mallory = Identity::generate();
    let someone_elses_key = [42u8; 32];
    // Mallory as responder.
    let (c, s) = tokio::io::duplex(1 << 16);
    let m2 = Identity::from_seed(&[5; 32]);
    let raw = tokio::spawn(async move {
        raw_responder(s, NOISE_PARAMS, PROLOGUE, |_| {
            HandshakePayload::sign(&m2, &someone_elses_key, now() + 60)
                .encode()
                .to_vec()
        })
        .await
    });
    let r = SecureChannel::initiate_with(c, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadSignature);
    drop(raw.await);
    // Mallory as initiator.
    let (c, s) = tokio::io::duplex(1 << 16);
    let raw = tokio::spawn(async move {
        raw_initiator(c, |_| {
            HandshakePayload::sign(&mallory, &someone_elses_key, now() + 60)
                .encode()
                .to_vec()
        })
        .await
    });
    let r = SecureChannel::respond_with(s, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadSignature);
    drop(raw.await);
}

#[tokio::test]
async fn an_expired_identity_signature_is_refused() {
    let (c, s) = tokio::io::duplex(1 << 16);
    let mallory = Identity::generate();
    let raw = tokio::spawn(async move {
        raw_initiator(c, |st| {
            HandshakePayload::sign(&mallory, st, now() - 1).encode().to_vec()
        })
        .await
    });
    let r = SecureChannel::respond_with(s, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::Expired);
    drop(raw.await);
}

#[tokio::test]
async fn misbinding_mallory_cannot_claim_alices_static_key_as_her_own() {
    // Mallory learns Alice's Noise static key and signs it with her own identity, hoping
    // Bob attributes Alice's session to Mallory. She must run Noise with her own static
    // key (she lacks Alice's private key), which then does not match what she signed.
    let (alice_hs, alice_static) = raw_state(NOISE_PARAMS, PROLOGUE, true);
    drop(alice_hs);
    let mallory = Identity::generate();
    let (c, s) = tokio::io::duplex(1 << 16);
    let raw = tokio::spawn(async move {
        raw_initiator(c, |_own| {
            HandshakePayload::sign(&mallory, &alice_static, now() + 60)
                .encode()
                .to_vec()
        })
        .await
    });
    let r = SecureChannel::respond_with(s, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadSignature);
    drop(raw.await);
}

#[tokio::test]
async fn misbinding_a_relay_cannot_swap_the_identity_payload_of_msg3() {
    // Mallory relays a genuine Alice-Bob handshake but replaces Alice's encrypted payload
    // in msg3 with the one from her own session with Bob.
    let (mallory, alice, bob) = (
        Identity::generate(),
        Identity::generate(),
        Identity::from_seed(&[8; 32]),
    );
    let m1 = mitm(pass(), pass());
    let (_, bob_side) = pair(
        m1.client,
        m1.server,
        &mallory,
        &Identity::from_seed(&[8; 32]),
        &quick(),
    )
    .await;
    assert!(bob_side.is_ok());
    let mallory_msg3 = m1.log.lock().unwrap().to_server[1].clone();
    let m2 = mitm(
        Box::new(move |i, mut f, _| {
            if i == 1 {
                let tail = mallory_msg3.len() - (HandshakePayload::LEN + 16);
                let start = f.len() - (HandshakePayload::LEN + 16);
                f[start..].copy_from_slice(&mallory_msg3[tail..]);
            }
            vec![Act::Send(f)]
        }),
        pass(),
    );
    let (a, b) = pair(m2.client, m2.server, &alice, &bob, &quick()).await;
    assert!(a.is_ok(), "alice finished her part");
    assert_eq!(handshake_err(b), HandshakeError::Decrypt);
}

#[tokio::test]
async fn a_peer_outside_the_trust_policy_is_refused_on_both_sides() {
    let (alice, bob, carol) = (Identity::generate(), Identity::generate(), Identity::generate());
    let cfg = quick();
    let (c, s) = tokio::io::duplex(1 << 16);
    let (a, _b) = tokio::join!(
        SecureChannel::initiate_with(c, &alice, TrustPolicy::allow([carol.identifier()]), &cfg),
        SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &cfg),
    );
    assert!(matches!(a, Err(ChannelError::UntrustedPeer(id)) if id == bob.identifier()));

    let (c, s) = tokio::io::duplex(1 << 16);
    let carol_id = carol.identifier();
    let (a, b) = tokio::join!(
        SecureChannel::initiate_with(c, &alice, TrustPolicy::any(), &cfg),
        SecureChannel::respond_with(s, &bob, TrustPolicy::predicate(move |id| *id == carol_id), &cfg),
    );
    assert!(matches!(b, Err(ChannelError::UntrustedPeer(id)) if id == alice.identifier()));
    // Alice's side finished its messages; the first read shows the channel is dead.
    if let Ok(mut a) = a {
        assert!(a.recv().await.is_err());
    }
}

#[tokio::test]
async fn all_zero_and_low_order_ephemeral_keys_are_refused() {
    let order8 = curve25519_dalek::constants::EIGHT_TORSION[1]
        .to_montgomery()
        .to_bytes();
    let mut one = [0u8; 32];
    one[0] = 1;
    for bad in [[0u8; 32], one, order8] {
        // As msg1's ephemeral, to a responder.
        let (mut c, s) = tokio::io::duplex(1 << 16);
        write_frame(&mut c, &bad).await;
        let r = SecureChannel::respond_with(s, &Identity::generate(), TrustPolicy::any(), &quick()).await;
        assert_eq!(handshake_err(r), HandshakeError::WeakKey);
        // As msg2's ephemeral, to an initiator.
        let m = mitm(
            pass(),
            Box::new(move |_, mut f, _| {
                f[2..34].copy_from_slice(&bad);
                vec![Act::Send(f)]
            }),
        );
        let (a, _) = pair(
            m.client,
            m.server,
            &Identity::generate(),
            &Identity::generate(),
            &quick(),
        )
        .await;
        assert_eq!(handshake_err(a), HandshakeError::WeakKey);
    }
}

#[tokio::test]
async fn a_payload_of_another_version_or_with_a_bad_key_is_refused() {
    let mallory = Identity::generate();
    for (tweak, want) in [
        (0usize, HandshakeError::BadPayload(PayloadError::Version(2))),
        (1, HandshakeError::BadPayload(PayloadError::IdentityKey)),
    ] {
        let (c, s) = tokio::io::duplex(1 << 16);
        let id = Identity::from_seed(&[3; 32]);
        let raw = tokio::spawn(async move {
            raw_initiator(c, move |st| {
                let mut p = HandshakePayload::sign(&id, st, now() + 60).encode().to_vec();
                if tweak == 0 {
                    p[0] = 2;
                } else {
                    // The neutral point: a small-order key anyone could "sign" for.
                    p[1..33].copy_from_slice(&[0; 32]);
                    p[1] = 1;
                }
                p
            })
            .await
        });
        let r = SecureChannel::respond_with(s, &mallory, TrustPolicy::any(), &quick()).await;
        assert_eq!(handshake_err(r), want);
        drop(raw.await);
    }
}

#[tokio::test]
async fn an_identity_payload_with_trailing_bytes_is_refused() {
    // One byte more than the payload: the message length alone gives it away.
    let (c, s) = tokio::io::duplex(1 << 16);
    let id = Identity::generate();
    let raw = tokio::spawn(async move {
        raw_initiator(c, move |st| {
            let mut p = HandshakePayload::sign(&id, st, now() + 60).encode().to_vec();
            p.push(0);
            p
        })
        .await
    });
    let r = SecureChannel::respond_with(s, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadLength);
    drop(raw.await);
}

#[tokio::test(start_paused = true)]
async fn a_slow_drip_handshake_times_out() {
    let bob = Identity::generate();
    let (mut c, s) = tokio::io::duplex(1 << 16);
    let config = ChannelConfig::default().handshake_timeout(Duration::from_secs(5));
    let drip = tokio::spawn(async move {
        // A valid length prefix, one byte every second, forever.
        c.write_all(&[0]).await.unwrap();
        for _ in 0..3600 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if c.write_all(&[32]).await.is_err() {
                break;
            }
        }
    });
    let started = tokio::time::Instant::now();
    let r = SecureChannel::respond_with(s, &bob, TrustPolicy::any(), &config).await;
    assert!(matches!(r, Err(ChannelError::Timeout)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    drip.abort();
}

/// A first handshake message (an ordinary ephemeral key) on `c`, then silence.
async fn msg1_then_silence(c: &mut tokio::io::DuplexStream) {
    use tokio::io::AsyncWriteExt;
    let mut msg1 = vec![0, 32];
    msg1.extend_from_slice(&Identity::generate().public().to_bytes()[..]);
    msg1[2] = 9; // any key that is not of small order
    c.write_all(&msg1).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn half_open_handshakes_are_bounded_and_freed_by_the_timeout() {
    let bob = std::sync::Arc::new(Identity::generate());
    let limiter = HandshakeLimiter::new(2);
    let config = ChannelConfig::default().handshake_timeout(Duration::from_secs(5));
    let mut stalled_clients = Vec::new();
    let mut running = Vec::new();
    for _ in 0..2 {
        let (mut c, s) = tokio::io::duplex(1024);
        msg1_then_silence(&mut c).await; // starts a handshake, never finishes it
        stalled_clients.push(c);
        let (bob, limiter, config) = (bob.clone(), limiter.clone(), config.clone());
        running.push(tokio::spawn(async move {
            limiter
                .respond(s, &bob, TrustPolicy::any(), &config)
                .await
                .map(drop)
        }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(limiter.available(), 0);
    let (mut c, s) = tokio::io::duplex(1024);
    msg1_then_silence(&mut c).await;
    let third = limiter.respond(s, &bob, TrustPolicy::any(), &config).await;
    assert!(matches!(third, Err(ChannelError::Busy)), "{third:?}");
    for r in running {
        let r = r.await.unwrap();
        assert!(matches!(r, Err(ChannelError::Timeout)), "{r:?}");
    }
    assert_eq!(limiter.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn silent_connections_wait_without_taking_handshake_slots() {
    let bob = std::sync::Arc::new(Identity::generate());
    let limiter = HandshakeLimiter::new(2);
    let mut idle_clients = Vec::new();
    let mut running = Vec::new();
    for _ in 0..10 {
        let (c, s) = tokio::io::duplex(1024);
        idle_clients.push(c); // connects, never speaks
        let (bob, limiter) = (bob.clone(), limiter.clone());
        running.push(tokio::spawn(async move {
            limiter
                .respond(s, &bob, TrustPolicy::any(), &ChannelConfig::default())
                .await
                .map(drop)
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(
        limiter.available(),
        2,
        "silent connections hold no handshake slot"
    );
    let started = tokio::time::Instant::now();
    for r in running {
        let r = r.await.unwrap();
        assert!(matches!(r, Err(ChannelError::Timeout)), "{r:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "dropped after the first-message timeout"
    );
}

#[tokio::test]
async fn a_reflected_msg1_does_not_complete() {
    // Everything Alice sends comes straight back to her.
    let (c, s) = tokio::io::duplex(1 << 16);
    let (mut sr, mut sw) = tokio::io::split(s);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut sw).await;
    });
    let r = SecureChannel::initiate_with(c, &Identity::generate(), TrustPolicy::any(), &quick()).await;
    assert_eq!(handshake_err(r), HandshakeError::BadLength);
}

#[tokio::test]
async fn msg3_replayed_from_an_old_session_is_refused() {
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let m1 = mitm(pass(), pass());
    let (a, b) = pair(m1.client, m1.server, &alice, &bob, &quick()).await;
    assert!(a.is_ok() && b.is_ok());
    let old_msg3 = m1.log.lock().unwrap().to_server[1].clone();
    let m2 = mitm(
        Box::new(move |i, f, _| vec![Act::Send(if i == 1 { old_msg3.clone() } else { f })]),
        pass(),
    );
    let (_a, b) = pair(m2.client, m2.server, &alice, &bob, &quick()).await;
    assert_eq!(handshake_err(b), HandshakeError::Decrypt);
}

#[test]
fn handshake_message_lengths_are_as_documented() {
    assert_eq!(MSG1_LEN, 32);
    assert_eq!(MSG2_LEN, 201);
    assert_eq!(actor_secure::wire::MSG3_LEN, 169);
}
