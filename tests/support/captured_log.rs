//! A `tracing_subscriber::fmt` writer that keeps what is logged (e.g. `troupe::audit`
//! events) as text, for tests to read.

use std::sync::{Arc, Mutex};

/// What the subscriber wrote, one entry per write; clones share it.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<String>>>);

impl CapturedLog {
    /// Everything written so far, as one text.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("")
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> CapturedLog {
        self.clone()
    }
}
