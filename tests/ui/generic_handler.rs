use troupe::prelude::*;

pub struct Store;

#[agent]
impl Store {
    #[handle]
    fn put<T: Send + 'static>(&mut self, item: T) {
        drop(item);
    }
}

fn main() {}
