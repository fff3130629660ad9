use troupe::prelude::*;

pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn id(&self) -> u64 {
        self.count
    }
}

fn main() {}
