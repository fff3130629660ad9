// Only `#[agent(remote)]` agents can be exported to other nodes.
use troupe::prelude::*;

#[derive(Default)]
pub struct Local;

#[agent]
impl Local {
    #[handle]
    fn ping(&self) {}
}

fn export<A: RemoteAgent>(_agent: &ActorRef<A>) {}

#[tokio::main]
async fn main() {
    let system = System::new();
    let local = system.spawn(Local);
    export(&local);
}
