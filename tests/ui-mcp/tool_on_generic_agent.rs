// Generic agents cannot serve tools: the tool's schema needs concrete types.
use troupe::prelude::*;

pub struct Store<T>(Vec<T>);

#[agent]
impl<T: Send + 'static> Store<T> {
    #[handle(tool)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn main() {}
