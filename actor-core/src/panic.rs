//! Keeping expected crashes quiet: agent panics without the default panic hook's output.

use std::fmt;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many [`QuietPanics`] guards are alive.
static QUIET: AtomicUsize = AtomicUsize::new(0);
/// Whether our hook (which wraps the one that was installed before) is in place.
static INSTALLED: OnceLock<()> = OnceLock::new();

thread_local! {
    /// Where the last panic inside an agent happened on this thread, for the crash log.
    static LAST_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Keeps panics inside agents from printing through the default panic hook while the
/// returned guard lives; panics anywhere else still print as usual.
///
/// A panic in a handler is a crash the runtime already reports: the caller gets
/// [`CallError::Panicked`](crate::CallError::Panicked) with the message, the supervisor
/// (if any) restarts the agent, and the crash is logged as a `tracing` error with the
/// agent, the reason and, while this is active, the panic's source location. The
/// default hook's extra output (and a full backtrace under `RUST_BACKTRACE=1`) is noise
/// for crashes you expect, as in tests of supervision or examples that crash on purpose.
///
/// The hook is installed once, on first use, and wraps whatever hook was in place; it
/// stays quiet only while at least one guard is alive, so bugs outside agents, and agent
/// panics after the guard is dropped, are never hidden.
///
/// ```
/// let _quiet = troupe::quiet_agent_panics();
/// // ... agents crash on purpose here; their crashes go to `tracing` only ...
/// ```
pub fn quiet_agent_panics() -> QuietPanics {
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if crate::runner::current_agent().is_some() {
                if let Some(at) = info.location() {
                    let at = at.to_string();
                    let _ = LAST_LOCATION.try_with(|l| *l.borrow_mut() = Some(at));
                }
                if QUIET.load(Ordering::Acquire) > 0 {
                    return;
                }
            }
            previous(info);
        }));
    });
    QUIET.fetch_add(1, Ordering::AcqRel);
    QuietPanics { _private: () }
}

/// Keeps agent panics quiet while it lives (see [`quiet_agent_panics`]).
#[must_use = "agent panics are quiet only while the guard lives"]
pub struct QuietPanics {
    _private: (),
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for QuietPanics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuietPanics")
    }
}

/// The location of the last agent panic on this thread, if the hook recorded one.
pub(crate) fn take_location() -> Option<String> {
    LAST_LOCATION.try_with(|l| l.borrow_mut().take()).ok().flatten()
}
