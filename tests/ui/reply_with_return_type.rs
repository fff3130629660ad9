use troupe::prelude::*;

pub struct Planner;

#[agent]
impl Planner {
    #[handle]
    fn plan(&mut self, task: String, reply: Reply<String>) -> String {
        drop(reply);
        task
    }
}

fn main() {}
