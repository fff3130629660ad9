//! Timers: delayed and periodic messages to oneself.

use std::fmt;
use std::future::Future;

use tokio::task::AbortHandle;

/// A scheduled [`send_after`](crate::Context::send_after) or
/// [`interval`](crate::Context::interval). Dropping the handle does not cancel the timer;
/// [`cancel`](TimerHandle::cancel) does, and so does the agent stopping.
#[derive(Clone)]
pub struct TimerHandle {
    abort: AbortHandle,
}

impl TimerHandle {
    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        TimerHandle {
            abort: tokio::spawn(task).abort_handle(),
        }
    }

    /// Cancels the timer: no further message is sent.
    pub fn cancel(&self) {
        self.abort.abort();
    }

    /// True while the timer may still send a message.
    pub fn is_active(&self) -> bool {
        !self.abort.is_finished()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("active", &self.is_active())
            .finish()
    }
}
