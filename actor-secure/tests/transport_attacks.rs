//! Adversarial and edge cases of the transport phase (T1-T11 in the security notes).

#[path = "support/mitm.rs"]
mod mitm;
#[path = "support/peers.rs"]
mod peers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_secure::wire::MAX_RECORD_BODY;
use actor_secure::{ChannelConfig, ChannelError, Identity, SecureChannel, TrustPolicy};
use mitm::{flip, mitm, pass, Act, Rule};
use peers::*;

/// Handshake frames in the client-to-server direction: msg1 and msg3.
const C2S_HANDSHAKE: usize = 2;

async fn through(to_server: Rule, to_client: Rule, config: &ChannelConfig) -> (Chan, Chan) {
    let m = mitm(to_server, to_client);
    let (a, b) = pair(
        m.client,
        m.server,
        &Identity::generate(),
        &Identity::generate(),
        config,
    )
    .await;
    (a.unwrap(), b.unwrap())
}

/// A rule that treats transport frame `k` (counted from 0, after the handshake) with `f`.
fn on_frame(k: usize, mut f: impl FnMut(Vec<u8>) -> Vec<Act> + Send + 'static) -> Rule {
    Box::new(move |i, frame, _| {
        if i == C2S_HANDSHAKE + k {
            f(frame)
        } else {
            vec![Act::Send(frame)]
        }
    })
}

#[tokio::test]
async fn messages_of_every_size_arrive_intact_across_fragment_boundaries() {
    let config = quick().max_message_size(4 << 20);
    let (mut a, mut b) = through(pass(), pass(), &config).await;
    let sizes = [
        0,
        1,
        128,
        MAX_RECORD_BODY - 1,
        MAX_RECORD_BODY,
        MAX_RECORD_BODY + 1,
        65536,
        3 * MAX_RECORD_BODY + 5,
        1 << 20,
    ];
    let writer = tokio::spawn(async move {
        for n in sizes {
            let msg: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            a.send(&msg).await.unwrap();
        }
        a
    });
    for n in sizes {
        let got = b.recv().await.unwrap();
        assert_eq!(got.len(), n);
        assert!(got.iter().enumerate().all(|(i, &x)| x == (i * 31 % 251) as u8));
    }
    writer.await.unwrap().close().await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::Closed)));
    assert!(
        matches!(b.recv().await, Err(ChannelError::Closed)),
        "close is sticky"
    );
}

#[tokio::test]
async fn a_bit_flip_in_a_frame_kills_the_channel() {
    for offset in [0, 1, 5, 16, 17, 20] {
        let (mut a, mut b) = through(
            on_frame(1, move |f| vec![Act::Send(flip(f, offset))]),
            pass(),
            &quick(),
        )
        .await;
        a.send(b"first").await.unwrap();
        a.send(b"second").await.unwrap();
        a.send(b"third").await.unwrap();
        assert_eq!(&b.recv().await.unwrap()[..], b"first");
        assert!(
            matches!(b.recv().await, Err(ChannelError::Decrypt)),
            "offset {offset}"
        );
        assert!(
            matches!(b.recv().await, Err(ChannelError::Broken)),
            "no frame after a failure"
        );
    }
}

#[tokio::test]
async fn a_length_prefix_below_the_minimum_is_a_protocol_error() {
    let (mut a, mut b) = through(
        on_frame(0, |mut f| {
            f[0] = 0;
            f[1] = 5;
            vec![Act::Send(f)]
        }),
        pass(),
        &quick(),
    )
    .await;
    a.send(b"hello").await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::Protocol(_))));
}

#[tokio::test]
async fn a_replayed_frame_is_refused() {
    let (mut a, mut b) = through(
        on_frame(0, |f| vec![Act::Send(f.clone()), Act::Send(f)]),
        pass(),
        &quick(),
    )
    .await;
    a.send(b"pay 10").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"pay 10");
    assert!(matches!(b.recv().await, Err(ChannelError::Decrypt)));
}

#[tokio::test]
async fn reordered_frames_are_refused() {
    let held = Arc::new(Mutex::new(None));
    let h = held.clone();
    let rule: Rule = Box::new(move |i, f, _| match i {
        i if i == C2S_HANDSHAKE => {
            *h.lock().unwrap() = Some(f);
            vec![]
        }
        i if i == C2S_HANDSHAKE + 1 => vec![Act::Send(f), Act::Send(h.lock().unwrap().take().unwrap())],
        _ => vec![Act::Send(f)],
    });
    let (mut a, mut b) = through(rule, pass(), &quick()).await;
    a.send(b"one").await.unwrap();
    a.send(b"two").await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::Decrypt)));
    drop(held);
}

#[tokio::test]
async fn a_frame_spliced_from_another_session_is_refused() {
    let (mut a1, mut b1) = through(pass(), pass(), &quick()).await;
    let stolen = Arc::new(Mutex::new(None::<Vec<u8>>));
    let s = stolen.clone();
    let m1 = mitm(
        Box::new(move |i, f, _| {
            if i == C2S_HANDSHAKE {
                *s.lock().unwrap() = Some(f.clone());
            }
            vec![Act::Send(f)]
        }),
        pass(),
    );
    let (x, y) = pair(
        m1.client,
        m1.server,
        &Identity::generate(),
        &Identity::generate(),
        &quick(),
    )
    .await;
    let (mut x, mut y) = (x.unwrap(), y.unwrap());
    x.send(b"session one").await.unwrap();
    assert_eq!(&y.recv().await.unwrap()[..], b"session one");
    let frame = stolen.lock().unwrap().clone().unwrap();
    // Inject session one's frame into a second session in place of its first frame.
    let m2 = mitm(on_frame(0, move |_| vec![Act::Send(frame.clone())]), pass());
    let (p, q) = pair(
        m2.client,
        m2.server,
        &Identity::generate(),
        &Identity::generate(),
        &quick(),
    )
    .await;
    let (mut p, mut q) = (p.unwrap(), q.unwrap());
    p.send(b"session two").await.unwrap();
    assert!(matches!(q.recv().await, Err(ChannelError::Decrypt)));
    // The unrelated pair still works.
    a1.send(b"ok").await.unwrap();
    assert_eq!(&b1.recv().await.unwrap()[..], b"ok");
}

#[tokio::test]
async fn a_frame_reflected_to_its_sender_is_refused() {
    // The client-bound direction first replays Alice's own first transport frame to her.
    let bounce: Rule = Box::new(|_, f, log| {
        let mut out = Vec::new();
        if let Some(own) = log.to_server.get(C2S_HANDSHAKE) {
            out.push(Act::Send(own.clone()));
        }
        out.push(Act::Send(f));
        out
    });
    let (mut a, mut b) = through(pass(), bounce, &quick()).await;
    a.send(b"hello").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"hello");
    b.send(b"reply").await.unwrap(); // arrives right after Alice's reflected frame
    assert!(matches!(a.recv().await, Err(ChannelError::Decrypt)));
}

#[tokio::test]
async fn a_stream_cut_before_close_is_an_abnormal_end() {
    // Cut at a frame boundary.
    let (mut a, mut b) = through(on_frame(1, |_| vec![Act::Cut]), pass(), &quick()).await;
    a.send(b"one").await.unwrap();
    a.send(b"two").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"one");
    assert!(matches!(b.recv().await, Err(ChannelError::ConnectionLost)));
    // Cut in the middle of a frame.
    let (mut a, mut b) = through(
        on_frame(0, |f| vec![Act::Send(f[..10].to_vec()), Act::Cut]),
        pass(),
        &quick(),
    )
    .await;
    a.send(b"a message that is cut").await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::ConnectionLost)));
    // Cut between the fragments of one large message.
    let (mut a, mut b) = through(on_frame(1, |_| vec![Act::Cut]), pass(), &quick()).await;
    let big = vec![7u8; 2 * MAX_RECORD_BODY];
    let _ = a.send(&big).await;
    assert!(matches!(b.recv().await, Err(ChannelError::ConnectionLost)));
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_stalls_half_way_times_out() {
    let config = quick().frame_timeout(Duration::from_secs(2));
    let (mut a, mut b) = through(on_frame(0, |f| vec![Act::Send(f[..5].to_vec())]), pass(), &config).await;
    a.send(b"never completes").await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::Timeout)));
}

#[tokio::test(start_paused = true)]
async fn an_idle_channel_does_not_time_out() {
    let config = quick().frame_timeout(Duration::from_secs(2));
    let (mut a, mut b) = through(pass(), pass(), &config).await;
    let reader = tokio::spawn(async move { b.recv().await.map(|m| m.to_vec()) });
    tokio::time::sleep(Duration::from_secs(60)).await;
    a.send(b"late").await.unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), b"late");
}

#[tokio::test]
async fn a_message_over_the_receivers_limit_is_refused_before_it_is_buffered() {
    let big = quick().max_message_size(1 << 20);
    let small = quick().max_message_size(100_000);
    let m = mitm(pass(), pass());
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let (a, b) = tokio::join!(
        SecureChannel::initiate_with(m.client, &alice, TrustPolicy::any(), &big),
        SecureChannel::respond_with(m.server, &bob, TrustPolicy::any(), &small),
    );
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    // One frame over the limit, and a fragmented one over the limit.
    let mut b2 = {
        let writer = tokio::spawn(async move {
            let _ = a.send(&vec![1u8; 200_000]).await;
            a
        });
        let r = b.recv().await;
        assert!(
            matches!(r, Err(ChannelError::MessageTooLarge { limit: 100_000 })),
            "{r:?}"
        );
        writer.await.unwrap();
        b
    };
    assert!(matches!(b2.recv().await, Err(ChannelError::Broken)));
    // The sender refuses locally too, without breaking its channel.
    let (mut x, mut y) = through(pass(), pass(), &small).await;
    assert!(matches!(
        x.send(&vec![0u8; 100_001]).await,
        Err(ChannelError::MessageTooLarge { .. })
    ));
    x.send(b"still fine").await.unwrap();
    assert_eq!(&y.recv().await.unwrap()[..], b"still fine");
}

#[tokio::test]
async fn nonce_exhaustion_stops_the_sender_but_still_allows_close() {
    let (mut a, mut b) = through(pass(), pass(), &quick()).await;
    let near = u64::MAX - 4;
    a.set_nonces_for_testing(near, 0);
    b.set_nonces_for_testing(0, near);
    let mut sent = 0;
    let err = loop {
        match a.send(b"x").await {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10, "never stopped");
    };
    assert!(matches!(err, ChannelError::NonceExhausted), "{err:?}");
    assert!(sent >= 1);
    assert!(matches!(a.send(b"x").await, Err(ChannelError::Broken)));
    for _ in 0..sent {
        assert_eq!(&b.recv().await.unwrap()[..], b"x");
    }
    // Never wraps: nonce u64::MAX is never used.
    assert!(a.nonces_for_testing().0 < u64::MAX);
}

#[tokio::test]
async fn close_after_nonce_exhaustion_uses_the_reserved_last_nonce() {
    let (mut a, mut b) = through(pass(), pass(), &quick()).await;
    a.set_nonces_for_testing(u64::MAX - 1, 0);
    b.set_nonces_for_testing(0, u64::MAX - 1);
    assert!(matches!(a.send(b"x").await, Err(ChannelError::NonceExhausted)));
    let (mut a, mut b) = through(pass(), pass(), &quick()).await;
    a.set_nonces_for_testing(u64::MAX - 1, 0);
    b.set_nonces_for_testing(0, u64::MAX - 1);
    a.close().await.unwrap();
    assert!(matches!(b.recv().await, Err(ChannelError::Closed)));
}

#[tokio::test]
async fn rekeying_on_schedule_keeps_messages_flowing_and_changes_the_key() {
    let config = quick().rekey_after_frames(3);
    let frames = Arc::new(Mutex::new(0usize));
    let f2 = frames.clone();
    let (mut a, mut b) = through(
        Box::new(move |_, f, _| {
            *f2.lock().unwrap() += 1;
            vec![Act::Send(f)]
        }),
        pass(),
        &config,
    )
    .await;
    for i in 0..10u8 {
        a.send(&[i; 40]).await.unwrap();
        assert_eq!(&b.recv().await.unwrap()[..], &[i; 40]);
    }
    // 2 handshake frames, 10 data frames and a rekey frame before data frames 4, 7, 10.
    assert_eq!(*frames.lock().unwrap(), 2 + 10 + 3);
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    let (a, b) = through(pass(), pass(), &quick()).await;
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let echo = tokio::spawn(async move {
        while let Ok(m) = br.recv().await {
            bw.send(&m).await.unwrap();
        }
        bw.close().await.unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut n = 0;
        loop {
            match ar.recv().await {
                Ok(m) => {
                    assert_eq!(m.len(), 1000);
                    n += 1
                }
                Err(ChannelError::Closed) => return n,
                Err(e) => panic!("{e}"),
            }
        }
    });
    for _ in 0..200 {
        aw.feed(&[5u8; 1000]).await.unwrap();
    }
    aw.flush().await.unwrap();
    aw.close().await.unwrap();
    echo.await.unwrap();
    assert_eq!(reader.await.unwrap(), 200);
}

#[tokio::test]
async fn fed_small_messages_share_frames_and_arrive_in_order() {
    let frames = Arc::new(Mutex::new(0usize));
    let f2 = frames.clone();
    let (mut a, mut b) = through(
        Box::new(move |_, f, _| {
            *f2.lock().unwrap() += 1;
            vec![Act::Send(f)]
        }),
        pass(),
        &quick(),
    )
    .await;
    for i in 0..300u16 {
        a.feed(&i.to_be_bytes().repeat(64)).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..300u16 {
        assert_eq!(&b.recv().await.unwrap()[..], &i.to_be_bytes().repeat(64)[..]);
    }
    // 300 records of 3 + 128 bytes fit in one 64 KiB frame.
    assert_eq!(*frames.lock().unwrap(), 2 + 1);
}
