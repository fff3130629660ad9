use troupe::prelude::*;

#[agent(mailbx = 64)]
pub struct Counter {
    count: u64,
}

#[agent(mailbox = 8)]
impl Counter {
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

fn main() {}
