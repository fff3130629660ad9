//! W3C trace context (`traceparent`) for messages that cross nodes: one request is one
//! trace, whichever nodes its handlers run on.
//!
//! Each handled message whose `troupe::handle` span is enabled gets a [`TraceContext`]:
//! the caller's trace continued (a message from another node that carried one) or a
//! new trace. Its ids are recorded in the span (`trace_id`, `span_id`,
//! `parent_span_id`), and while the handler runs, [`current`] gives it, so that the
//! node layer can send it along with the handler's remote calls and casts. Nothing of
//! this runs when no subscriber wants the spans.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

/// A W3C trace context: a trace id, the id of the span that sent the message (the
/// parent of the handler's span on the other side), and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// The bytes of a trace context on the wire: version (0), trace id, span id, flags.
pub const WIRE_LEN: usize = 26;

/// Why a `traceparent` text or a trace context's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParseError {
    /// Not `version-traceid-spanid-flags` with 2, 32, 16 and 2 lower-case hex digits.
    Malformed,
    /// A version other than `00`.
    Version(u8),
    /// An all-zero trace id or span id.
    ZeroId,
}

impl fmt::Display for TraceParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceParseError::Malformed => f.write_str("malformed traceparent"),
            TraceParseError::Version(v) => write!(f, "unsupported traceparent version {v:02x}"),
            TraceParseError::ZeroId => f.write_str("all-zero trace or span id"),
        }
    }
}

impl std::error::Error for TraceParseError {}

/// Random, non-zero ids (from std's randomly keyed SipHash over a counter: unique and
/// unpredictable enough for tracing, no dependency).
fn random_u64() -> u64 {
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }
    loop {
        let n = COUNT.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        let mut h = KEYS.with(|k| k.build_hasher());
        h.write_u64(n);
        let v = h.finish();
        if v != 0 {
            return v;
        }
    }
}

impl TraceContext {
    /// A new trace (a random trace id) whose first span is a new random span id;
    /// sampled (flags `01`).
    pub fn new_root() -> TraceContext {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&random_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&random_u64().to_be_bytes());
        TraceContext {
            trace_id,
            span_id: random_u64().to_be_bytes(),
            flags: 1,
        }
    }

    /// A new span of the same trace (a new span id; same trace id and flags).
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_u64().to_be_bytes(),
            ..*self
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// Parses a `traceparent` header value (version `00`).
    pub fn parse_traceparent(text: &str) -> Result<TraceContext, TraceParseError> {
        let parts: Vec<&str> = text.trim().split('-').collect();
        let [version, trace, span, flags] = parts[..] else {
            return Err(TraceParseError::Malformed);
        };
        let version = unhex::<1>(version)?[0];
        if version != 0 {
            return Err(TraceParseError::Version(version));
        }
        TraceContext::checked(unhex(trace)?, unhex(span)?, unhex::<1>(flags)?[0])
    }

    fn checked(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Result<TraceContext, TraceParseError> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceParseError::ZeroId);
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The [`WIRE_LEN`] bytes that carry it in a link message.
    pub fn to_bytes(&self) -> [u8; WIRE_LEN] {
        let mut out = [0u8; WIRE_LEN];
        out[1..17].copy_from_slice(&self.trace_id);
        out[17..25].copy_from_slice(&self.span_id);
        out[25] = self.flags;
        out
    }

    /// Reads what [`to_bytes`](TraceContext::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8; WIRE_LEN]) -> Result<TraceContext, TraceParseError> {
        if bytes[0] != 0 {
            return Err(TraceParseError::Version(bytes[0]));
        }
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&bytes[1..17]);
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&bytes[17..25]);
        TraceContext::checked(trace_id, span_id, bytes[25])
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.traceparent())
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex<const N: usize>(text: &str) -> Result<[u8; N], TraceParseError> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return Err(TraceParseError::Malformed);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceParseError::Malformed),
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

thread_local! {
    static CURRENT: Cell<Option<TraceContext>> = const { Cell::new(None) };
}

/// The trace context of the handler running on this thread, when its span is enabled
/// (the node layer sends it with the handler's remote calls and casts). Tasks the
/// handler spawns do not inherit it.
pub fn current() -> Option<TraceContext> {
    CURRENT.with(Cell::get)
}

/// Polls `fut` with `trace` as the [`current`] context.
pub(crate) struct WithTrace<'a, F> {
    pub(crate) fut: Pin<&'a mut F>,
    pub(crate) trace: TraceContext,
}

impl<F: Future> Future for WithTrace<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let trace = self.trace;
        let before = CURRENT.with(|c| c.replace(Some(trace)));
        // Restored even when the handler panics.
        struct Restore(Option<TraceContext>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(before);
        self.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_matches_the_w3c_example() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse_traceparent(text).unwrap();
        assert_eq!(t.traceparent(), text);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(t.flags(), 1);
        assert_eq!(TraceContext::from_bytes(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(
                TraceContext::parse_traceparent(bad),
                Err(TraceParseError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            TraceContext::parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceParseError::ZeroId)
        );
        assert_eq!(
            TraceContext::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceParseError::Version(1))
        );
        let mut bytes = TraceContext::new_root().to_bytes();
        bytes[0] = 7;
        assert_eq!(TraceContext::from_bytes(&bytes), Err(TraceParseError::Version(7)));
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
    }
}
