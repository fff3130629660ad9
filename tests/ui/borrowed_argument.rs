use troupe::prelude::*;

pub struct Greeter;

#[agent]
impl Greeter {
    #[handle]
    fn greet(&self, name: &str) -> String {
        format!("hello {name}")
    }
}

fn main() {}
