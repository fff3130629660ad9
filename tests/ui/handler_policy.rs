// Handler policies are checked when the agent compiles.
use troupe::prelude::*;

#[derive(Default)]
pub struct Vault;

#[agent(remote)]
impl Vault {
    #[handle(policy = "(= subject.role \"admin\"")]
    fn open(&self) {}

    #[handle(polcy = "true")]
    fn close(&self) {}
}

#[derive(Default)]
pub struct Local;

#[agent]
impl Local {
    #[handle(policy = "true")]
    fn ping(&self) {}
}

fn main() {}
