// A tool's result must be serializable to JSON.
use troupe::prelude::*;

pub struct Opaque;

#[derive(Default)]
pub struct Maker;

#[agent]
impl Maker {
    #[handle(tool)]
    fn make(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
