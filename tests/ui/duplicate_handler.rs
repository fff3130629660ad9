use troupe::prelude::*;

pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn add_one(&mut self) {
        self.count += 1;
    }

    #[handle]
    fn addOne(&mut self) {
        self.count += 1;
    }
}

fn main() {}
