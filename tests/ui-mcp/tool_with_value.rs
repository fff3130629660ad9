// `tool` is a flag, not a key with a value.
use troupe::prelude::*;

#[derive(Default)]
pub struct Calculator;

#[agent]
impl Calculator {
    #[handle(tool = true)]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
