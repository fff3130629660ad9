use std::rc::Rc;
use troupe::prelude::*;

pub struct Holder;

#[agent]
impl Holder {
    #[handle]
    fn keep(&self, value: Rc<u8>) -> u8 {
        *value
    }
}

fn main() {}
