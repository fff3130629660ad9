use troupe::prelude::*;

pub struct Counter {
    count: u64,
}

impl Counter {
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

fn main() {}
