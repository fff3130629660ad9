use troupe::prelude::*;

pub struct Worker;

#[agent]
impl Worker {
    #[handle]
    fn consume(self) {}

    #[handle]
    fn generic<T>(&self, _t: T) {}

    #[on_stop]
    fn stopped(&mut self, reason: &StopReason, extra: u8) {
        let _ = (reason, extra);
    }
}

fn main() {}
