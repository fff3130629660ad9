// A tool's arguments must be deserializable and have a JSON Schema.
use troupe::prelude::*;

pub struct Point {
    pub x: i64,
}

#[derive(Default)]
pub struct Plotter;

#[agent]
impl Plotter {
    #[handle(tool)]
    fn plot(&self, at: Point) -> i64 {
        at.x
    }
}

fn main() {}
