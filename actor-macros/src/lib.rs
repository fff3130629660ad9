//! The `#[agent]` and `#[handle]` attribute macros of troupe.
//!
//! Use them through the facade: `use troupe::prelude::*;`. The entry points here are thin;
//! the work happens on `proc_macro2` token streams in `agent::expand` so it can be unit
//! tested: parse (`model`) -> validate (in `model`) -> generate (`expand`).

mod agent;
mod attr;
mod expand;
mod model;
mod symbol;

use proc_macro::TokenStream;

/// Turns a struct and its `impl` block into an agent.
///
/// - On the **impl block** (required): every `#[handle]` method becomes a message; the
///   macro generates the message enum `<Name>Msg`, the reply enum `<Name>Reply`, the typed
///   client `<Name>Client` (what `ActorRef<Name>` dereferences to) and the `Agent` impl.
///   Options: `remote` (derive serde for the message and reply enums), `crate = "path"`.
/// - On the **struct** (optional): options, `mailbox = N` (capacity), `crate = "path"`.
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    agent::expand(attr.into(), item.into()).into()
}

/// Marks a method of an `#[agent]` impl block as a message handler.
///
/// Handlers take `&self` or `&mut self`, may be `async`, may take a
/// `&mut Context<Self>` parameter, and return any `Send + 'static` value. A handler
/// that takes a `Reply<T>` parameter returns nothing and answers through it, when it
/// likes; callers still get a `T`.
#[proc_macro_attribute]
pub fn handle(attr: TokenStream, item: TokenStream) -> TokenStream {
    agent::misplaced(symbol::HANDLE, attr.into(), item.into()).into()
}

/// Marks the method of an `#[agent]` impl block that runs before the first message.
#[proc_macro_attribute]
pub fn on_start(attr: TokenStream, item: TokenStream) -> TokenStream {
    agent::misplaced(symbol::ON_START, attr.into(), item.into()).into()
}

/// Marks the method of an `#[agent]` impl block that receives `Down` notices: a
/// monitored agent stopped, or a linked one exited (crash or normal stop) while this agent
/// traps exits.
#[proc_macro_attribute]
pub fn on_down(attr: TokenStream, item: TokenStream) -> TokenStream {
    agent::misplaced(symbol::ON_DOWN, attr.into(), item.into()).into()
}

/// Marks the method of an `#[agent]` impl block that runs after the last message; it
/// receives the `&StopReason`.
#[proc_macro_attribute]
pub fn on_stop(attr: TokenStream, item: TokenStream) -> TokenStream {
    agent::misplaced(symbol::ON_STOP, attr.into(), item.into()).into()
}
