//! A man in the middle for tests: relays length-prefixed frames (handshake messages and
//! transport frames share the 2-byte length framing) between a client and a server, and
//! lets a test rewrite, drop, duplicate, reorder, inject or cut them.

#![allow(dead_code)] // each test file uses a different part of it

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// What to do with the stream after seeing a frame.
pub(crate) enum Act {
    /// Write these raw bytes (a whole frame with its prefix, or any fragment of one).
    Send(Vec<u8>),
    /// Close this direction (the receiver sees the stream end).
    Cut,
}

/// Every frame seen so far, per direction, with its length prefix.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) to_server: Vec<Vec<u8>>,
    pub(crate) to_client: Vec<Vec<u8>>,
}

pub(crate) type Rule = Box<dyn FnMut(usize, Vec<u8>, &Log) -> Vec<Act> + Send>;

pub(crate) fn pass() -> Rule {
    Box::new(|_, frame, _| vec![Act::Send(frame)])
}

pub(crate) struct Mitm {
    pub(crate) client: DuplexStream,
    pub(crate) server: DuplexStream,
    pub(crate) log: Arc<Mutex<Log>>,
}

pub(crate) fn mitm(to_server: Rule, to_client: Rule) -> Mitm {
    let (client, client_far) = tokio::io::duplex(1 << 20);
    let (server, server_far) = tokio::io::duplex(1 << 20);
    let log = Arc::new(Mutex::new(Log::default()));
    let (cr, cw) = tokio::io::split(client_far);
    let (sr, sw) = tokio::io::split(server_far);
    tokio::spawn(relay(cr, sw, to_server, log.clone(), true));
    tokio::spawn(relay(sr, cw, to_client, log.clone(), false));
    Mitm { client, server, log }
}

async fn relay<R, W>(mut r: R, mut w: W, mut rule: Rule, log: Arc<Mutex<Log>>, to_server: bool)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut index = 0;
    loop {
        let mut prefix = [0u8; 2];
        if r.read_exact(&mut prefix).await.is_err() {
            break;
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        let mut frame = vec![0u8; 2 + len];
        frame[..2].copy_from_slice(&prefix);
        if r.read_exact(&mut frame[2..]).await.is_err() {
            break;
        }
        let acts = {
            let mut log = log.lock().unwrap();
            if to_server {
                log.to_server.push(frame.clone());
            } else {
                log.to_client.push(frame.clone());
            }
            rule(index, frame, &log)
        };
        index += 1;
        for act in acts {
            match act {
                Act::Send(bytes) => {
                    if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
                        return;
                    }
                }
                Act::Cut => {
                    let _ = w.shutdown().await;
                    return;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

/// Flips one bit of the frame at `offset` (counted after the length prefix).
pub(crate) fn flip(mut frame: Vec<u8>, offset: usize) -> Vec<u8> {
    let i = 2 + offset % (frame.len() - 2);
    frame[i] ^= 0x01;
    frame
}
