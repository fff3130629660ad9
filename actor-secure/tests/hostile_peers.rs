//! Availability against hostile peers: no setting panics, deadlines belong to the channel
//! and not to the call, and everything a peer can make us hold (time, bytes, channels)
//! is bounded. Each test reproduces an attack that worked before the defence existed.

#[path = "support/mitm.rs"]
mod mitm;
#[path = "support/peers.rs"]
mod peers;

use std::time::Duration;

use actor_secure::wire::MAX_RECORD_BODY;
use actor_secure::{
    ChannelConfig, ChannelError, ChannelLimits, HandshakeError, Identity, SecureChannel, TrustPolicy,
};
use peers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const DATA: u8 = 0;
const MORE: u8 = 1;

/// A server channel (bob) with `config`, and a hostile authenticated client.
async fn hostile_client(config: &ChannelConfig) -> (RawTransport, Chan) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let (raw, ch) = tokio::join!(
        RawTransport::connect(client, &alice),
        SecureChannel::respond_with(server, &bob, TrustPolicy::any(), config),
    );
    (raw, ch.unwrap())
}

/// An honest pair over a duplex of `capacity` bytes.
async fn honest_pair(capacity: usize, config: &ChannelConfig) -> (Chan, Chan) {
    let (client, server) = tokio::io::duplex(capacity);
    let (a, b) = pair(
        client,
        server,
        &Identity::generate(),
        &Identity::generate(),
        config,
    )
    .await;
    (a.unwrap(), b.unwrap())
}

// 1. No configuration value may lead to a panic.

#[tokio::test]
async fn a_frame_timeout_of_duration_max_means_never_and_does_not_panic() {
    let config = quick().frame_timeout(Duration::MAX);
    // A small pipe: the 1 MiB message arrives in many reads, each of which used to
    // compute `now + Duration::MAX`.
    let (mut a, mut b) = honest_pair(4096, &config).await;
    let msg = vec![0x5a; 1 << 20];
    let sent = msg.clone();
    let sender = tokio::spawn(async move { a.send(&sent).await.map(|()| a) });
    assert_eq!(&b.recv().await.unwrap()[..], &msg[..]);
    sender.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_duration_may_be_duration_max() {
    let config = ChannelConfig::default()
        .handshake_timeout(Duration::MAX)
        .first_message_timeout(Duration::MAX)
        .frame_timeout(Duration::MAX)
        .message_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .keepalive_interval(Duration::MAX)
        .write_timeout(Duration::MAX)
        .binding_validity(Duration::MAX);
    let (mut a, mut b) = honest_pair(1 << 16, &config).await;
    a.send(b"hello").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"hello");
    // A hostile half frame with no frame timeout just waits (no panic, no error).
    let (mut raw, mut ch) = hostile_client(&config).await;
    let frame = raw.seal(&record(DATA, b"never completes"));
    raw.io.write_all(&frame[..5]).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3600), ch.recv()).await;
    assert!(waited.is_err(), "recv should still be waiting: {waited:?}");
}

// 2. Connections that never speak do not hold a handshake for long.

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_speaks_is_dropped_after_the_first_message_timeout() {
    let (_silent, server) = tokio::io::duplex(1024);
    let start = Instant::now();
    let result = SecureChannel::respond(server, &Identity::generate(), TrustPolicy::any()).await;
    assert!(matches!(result, Err(ChannelError::Timeout)), "{result:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

// 3. Memory held by messages that never complete.

#[tokio::test(start_paused = true)]
async fn a_message_that_never_completes_is_dropped_after_the_message_timeout() {
    let limits = ChannelLimits::new(16, 1 << 20);
    let config = quick().limits(limits.clone());
    let (mut raw, mut ch) = hostile_client(&config).await;
    let start = Instant::now();
    let reader = tokio::spawn(async move { ch.recv().await });
    raw.frame(&record(MORE, &[7; 60_000])).await;
    // Then one empty fragment every 25 s: each frame is complete and on time, so only
    // the message's own deadline can end this.
    let dripper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(25)).await;
            raw.frame(&record(MORE, &[])).await;
        }
    });
    let result = tokio::time::timeout(Duration::from_secs(3600), reader).await;
    dripper.abort();
    let result = result.expect("the partial message is held for an hour").unwrap();
    assert!(matches!(result, Err(ChannelError::Timeout)), "{result:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(60) && took < Duration::from_secs(61),
        "{took:?}"
    );
    assert_eq!(limits.memory_in_use(), 0, "the budget is given back");
}

#[tokio::test]
async fn the_default_message_limit_is_one_mebibyte_with_a_clear_error() {
    let (mut a, mut b) = honest_pair(1 << 16, &ChannelConfig::default()).await;
    let too_big = vec![1u8; (1 << 20) + 1];
    let err = a.send(&too_big).await.unwrap_err();
    assert!(matches!(err, ChannelError::MessageTooLarge { limit } if limit == 1 << 20));
    assert_eq!(err.to_string(), "message larger than 1048576 bytes");
    // Nothing was sent and the channel still works, up to exactly the limit.
    let just_fits = vec![2u8; 1 << 20];
    let sent = just_fits.clone();
    let sender = tokio::spawn(async move { a.send(&sent).await });
    assert_eq!(b.recv().await.unwrap().len(), just_fits.len());
    sender.await.unwrap().unwrap();
}

#[tokio::test]
async fn incomplete_messages_of_all_channels_share_one_budget() {
    const BUDGET: usize = 256 * 1024;
    let limits = ChannelLimits::new(64, BUDGET);
    let config = quick().limits(limits.clone());
    let mut peers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (mut raw, mut ch) = hostile_client(&config).await;
        readers.push(tokio::spawn(async move { ch.recv().await }));
        // 120 KB each, never finished: 8 of them would hold ~1 MB.
        raw.frame(&record(MORE, &[1; 60_000])).await;
        raw.frame(&record(MORE, &[2; 60_000])).await;
        peers.push(raw);
    }
    let mut over_budget = 0;
    let mut waiting = 0;
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(2), reader).await {
            Ok(result) => {
                let result = result.unwrap();
                assert!(
                    matches!(result, Err(ChannelError::OverBudget { budget: BUDGET })),
                    "{result:?}"
                );
                over_budget += 1;
            }
            Err(_) => waiting += 1,
        }
        assert!(limits.memory_in_use() <= BUDGET);
    }
    assert_eq!(waiting, 2, "two partial messages fit in the budget");
    assert_eq!(over_budget, 6);
    drop(peers);
}

// 4. The frame deadline survives `recv()` being cancelled.

#[tokio::test(start_paused = true)]
async fn a_half_frame_times_out_even_when_recv_is_cancelled_by_a_periodic_tick() {
    let config = quick().frame_timeout(Duration::from_secs(30));
    let (mut raw, mut ch) = hostile_client(&config).await;
    let frame = raw.seal(&record(DATA, b"never completes"));
    raw.io.write_all(&frame[..5]).await.unwrap();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = tokio::time::timeout(Duration::from_secs(3600), async {
        loop {
            tokio::select! {
                result = ch.recv() => break result,
                _ = tick.tick() => {}
            }
        }
    })
    .await
    .expect("the half frame is held for an hour");
    assert!(matches!(result, Err(ChannelError::Timeout)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(31));
}

// 5. Peers that never read, channels that go quiet, and too many channels.

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_cannot_block_send_for_ever() {
    let config = quick().write_timeout(Duration::from_secs(30));
    let (mut a, _b) = honest_pair(64 * 1024, &config).await;
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(3600), a.send(&vec![0u8; 512 * 1024]))
        .await
        .expect("send blocked for an hour");
    assert!(matches!(result, Err(ChannelError::WriteTimeout)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(31));
    assert!(matches!(a.send(b"more").await, Err(ChannelError::Broken)));
}

#[tokio::test(start_paused = true)]
async fn a_silent_established_channel_is_closed_as_idle() {
    let (_quiet, mut b) = honest_pair(1 << 16, &quick()).await;
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(3600), b.recv())
        .await
        .expect("an idle channel lived for an hour");
    assert!(matches!(result, Err(ChannelError::IdleTimeout)), "{result:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(120) && took < Duration::from_secs(121),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn channels_that_keep_reading_keep_each_other_alive_with_keepalives() {
    let (mut a, mut b) = honest_pair(1 << 16, &quick()).await;
    let quiet = Duration::from_secs(600);
    let (ra, rb) = tokio::join!(
        tokio::time::timeout(quiet, a.recv()),
        tokio::time::timeout(quiet, b.recv()),
    );
    // Ten quiet minutes: both still waiting, neither idle.
    assert!(ra.is_err() && rb.is_err(), "{ra:?} {rb:?}");
    a.send(b"still here").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"still here");
}

#[tokio::test(start_paused = true)]
async fn a_split_writer_keeps_the_channel_alive_with_explicit_keepalives() {
    let (a, mut b) = honest_pair(1 << 16, &quick()).await;
    let (_reader, mut writer) = a.split();
    let keepalives = tokio::spawn(async move {
        loop {
            let due = writer.keepalive_due().expect("keepalives are on");
            tokio::time::sleep_until(due).await;
            writer.keepalive().await.unwrap();
        }
    });
    let waited = tokio::time::timeout(Duration::from_secs(600), b.recv()).await;
    assert!(waited.is_err(), "{waited:?}");
    keepalives.abort();
}

#[tokio::test]
async fn the_number_of_open_channels_is_capped_with_a_clear_error() {
    let server = quick().limits(ChannelLimits::new(1, 1 << 20));
    let bob = Identity::generate();
    let open = |config: ChannelConfig| {
        let bob = &bob;
        async move {
            let (client, srv) = tokio::io::duplex(1 << 16);
            let (alice, client_config) = (Identity::generate(), quick());
            let (a, b) = tokio::join!(
                SecureChannel::initiate_with(client, &alice, TrustPolicy::any(), &client_config),
                SecureChannel::respond_with(srv, bob, TrustPolicy::any(), &config),
            );
            (a, b)
        }
    };
    let (a1, b1) = open(server.clone()).await;
    let (a1, b1) = (a1.unwrap(), b1.unwrap());
    let (a2, b2) = open(server.clone()).await;
    let err = b2.unwrap_err();
    assert!(
        matches!(err, ChannelError::TooManyChannels { limit: 1 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "too many channels open (limit 1)");
    assert!(a2.is_err(), "the refused client sees the connection end");
    // Both halves of a split channel hold the slot; dropping both frees it.
    let (r, w) = b1.split();
    drop(r);
    assert!(open(server.clone()).await.1.is_err());
    drop(w);
    drop(a1);
    assert!(open(server).await.1.is_ok());
}

// 6. What a kept message pins.

/// The allocation a message keeps alive, once it is the only owner.
fn pinned(msg: bytes::Bytes) -> usize {
    match msg.try_into_mut() {
        Ok(unique) => unique.capacity(),
        Err(shared) => panic!("message of {} bytes still shares its buffer", shared.len()),
    }
}

#[tokio::test]
async fn a_kept_message_pins_at_most_twice_its_size() {
    let (mut a, mut b) = honest_pair(1 << 20, &quick()).await;
    // Many mid-sized messages share frames; then one that fills a frame; then one in
    // fragments.
    for i in 0..40u8 {
        a.feed(&[i; 3000]).await.unwrap();
    }
    a.feed(&vec![0xee; 60_000]).await.unwrap();
    a.feed(&vec![0xff; 3 * MAX_RECORD_BODY]).await.unwrap();
    a.flush().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..42 {
        got.push(b.recv().await.unwrap());
    }
    drop(b);
    let keep = [0, 20, 39, 40, 41];
    let kept: Vec<_> = got
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, m)| m)
        .collect();
    for msg in kept {
        let len = msg.len();
        let pinned = pinned(msg);
        assert!(pinned <= 2 * len, "a {len}-byte message pins {pinned} bytes");
    }
}

// 10. Defaults that invite misuse.

#[tokio::test]
async fn a_connection_to_ourselves_is_refused() {
    let me = Identity::generate();
    let (client, server) = tokio::io::duplex(1 << 16);
    let (a, _b) = pair(client, server, &me, &me, &quick()).await;
    assert!(
        matches!(a, Err(ChannelError::Handshake(HandshakeError::SelfConnection))),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_binding_valid_for_ever_is_refused() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mallory, bob) = (Identity::generate(), Identity::generate());
    let (_io, b) = tokio::join!(
        raw_initiator(client, |s| actor_secure::wire::HandshakePayload::sign(
            &mallory,
            s,
            u64::MAX
        )
        .encode()
        .to_vec()),
        SecureChannel::respond(server, &bob, TrustPolicy::any()),
    );
    assert!(
        matches!(b, Err(ChannelError::Handshake(HandshakeError::ValidityTooLong))),
        "{b:?}"
    );
}

#[tokio::test]
async fn a_silent_peer_gets_no_handshake_bytes_before_it_speaks() {
    // The responder sends nothing (and so has signed nothing) until msg1 arrives.
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let responder = tokio::spawn(async move {
        SecureChannel::respond(server, &Identity::generate(), TrustPolicy::any()).await
    });
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(200), client.read(&mut byte)).await;
    assert!(early.is_err(), "the responder spoke first");
    drop(client);
    assert!(responder.await.unwrap().is_err());
}
