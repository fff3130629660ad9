use troupe::prelude::*;

pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn add(&mut self) {
        self.count += 1;
    }

    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }
}

fn main() {}
