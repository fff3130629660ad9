//! Property tests for every decoder: arbitrary input never panics, accepted input is
//! canonical (re-encodes to the same bytes), and valid input round-trips.

use actor_secure::wire::{decode_frame_len, decode_record, HandshakePayload, RecordKind};
use actor_secure::{ChannelError, Identifier, Identity, SecureChannel, TrustPolicy};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn identifier_parse_accepts_only_its_own_display(s in "\\PC{0,80}") {
        if let Ok(id) = s.parse::<Identifier>() {
            prop_assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn identifier_text_round_trips(bytes in any::<[u8; 32]>()) {
        let id = Identifier::from_bytes(bytes);
        prop_assert_eq!(id.to_string().parse::<Identifier>().unwrap(), id);
    }

    #[test]
    fn identifier_like_text_with_one_bad_character_is_refused(
        bytes in any::<[u8; 32]>(), pos in 0usize..65, c in any::<char>()
    ) {
        let mut text: Vec<char> = Identifier::from_bytes(bytes).to_string().chars().collect();
        let valid = if pos == 0 { c == 'I' } else { c.is_ascii_digit() || ('a'..='f').contains(&c) };
        text[pos] = c;
        let text: String = text.into_iter().collect();
        prop_assert_eq!(text.parse::<Identifier>().is_ok(), valid);
    }

    #[test]
    fn handshake_payload_decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = HandshakePayload::decode(&bytes) {
            prop_assert_eq!(&p.encode()[..], &bytes[..]);
        }
        if bytes.len() != HandshakePayload::LEN {
            prop_assert!(HandshakePayload::decode(&bytes).is_err());
        }
    }

    #[test]
    fn handshake_payload_round_trips_and_any_bit_flip_breaks_it(
        seed in any::<[u8; 32]>(), key in any::<[u8; 32]>(), expiry in 1u64.., bit in 0usize..(HandshakePayload::LEN * 8)
    ) {
        let p = HandshakePayload::sign(&Identity::from_seed(&seed), &key, expiry);
        let enc = p.encode();
        let dec = HandshakePayload::decode(&enc).unwrap();
        prop_assert!(dec.verify(&key, expiry - 1).is_ok());
        let mut bad = enc;
        bad[bit / 8] ^= 1 << (bit % 8);
        if let Ok(q) = HandshakePayload::decode(&bad) {
            prop_assert!(q.verify(&key, 0).is_err());
        }
    }

    #[test]
    fn credential_decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(c) = actor_secure::Credential::from_bytes(&bytes) {
            prop_assert_eq!(c.to_bytes(), bytes);
        }
    }

    #[test]
    fn identity_file_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(id) = Identity::from_file_bytes(&bytes) {
            prop_assert_eq!(&id.to_file_bytes()[..], &bytes[..]);
        }
    }

    #[test]
    fn identity_file_round_trips_and_any_bit_flip_is_detected(
        seed in any::<[u8; 32]>(), bit in 0usize..(74 * 8)
    ) {
        let id = Identity::from_seed(&seed);
        let bytes = id.to_file_bytes();
        prop_assert_eq!(Identity::from_file_bytes(&bytes).unwrap().identifier(), id.identifier());
        let mut bad = bytes.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Identity::from_file_bytes(&bad).is_err());
    }

    #[test]
    fn frame_header_and_record_decoders_never_panic(
        prefix in any::<[u8; 2]>(), text in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok(len) = decode_frame_len(prefix) {
            prop_assert!(len >= 19);
        }
        let mut rest = &text[..];
        while let Ok((kind, body, tail)) = decode_record(rest) {
            prop_assert_eq!(3 + body.len() + tail.len(), rest.len());
            prop_assert_eq!(kind.to_byte(), rest[0]);
            if matches!(kind, RecordKind::Close | RecordKind::Rekey) {
                prop_assert!(body.is_empty() && tail.is_empty());
            }
            if kind == RecordKind::Keepalive {
                prop_assert!(body.is_empty());
            }
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The receiver's whole frame path on arbitrary bytes after a real handshake: it
    /// never panics and never delivers a message.
    #[test]
    fn arbitrary_bytes_after_the_handshake_are_never_delivered(
        junk in proptest::collection::vec(any::<u8>(), 0..2000)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (c, mut mid) = tokio::io::duplex(1 << 16);
            let (mut mid2, s) = tokio::io::duplex(1 << 16);
            let (alice, bob) = (Identity::generate(), Identity::generate());
            // Relay the three handshake messages, then inject junk and end the stream.
            let relay = tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for (len, to_server) in [(2 + 32, true), (2 + 201, false), (2 + 169, true)] {
                    let (from, to) = if to_server { (&mut mid, &mut mid2) } else { (&mut mid2, &mut mid) };
                    from.read_exact(&mut buf[..len]).await.unwrap();
                    to.write_all(&buf[..len]).await.unwrap();
                }
                mid2.write_all(&junk).await.unwrap();
                mid2.shutdown().await.unwrap();
                (mid, mid2)
            });
            let (a, b) = tokio::join!(
                SecureChannel::initiate(c, &alice, TrustPolicy::any()),
                SecureChannel::respond(s, &bob, TrustPolicy::any()),
            );
            let (_a, mut b) = (a.unwrap(), b.unwrap());
            let _keep = relay.await.unwrap();
            let r = b.recv().await;
            assert!(matches!(
                r,
                Err(ChannelError::Decrypt | ChannelError::Protocol(_) | ChannelError::ConnectionLost)
            ), "{r:?}");
        });
    }
}
