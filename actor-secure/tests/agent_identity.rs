//! Agent identities through the runtime's references and contexts.

use actor_core::{Agent, AgentClient, Context, RawRef, Request, System};
use actor_secure::{AgentIdentityExt, Identifier, Identity};

/// A hand-written agent (the `#[agent]` macro lives in the facade crate) that answers
/// with its own identifier as computed from its context.
struct Probe {
    node: Identity,
}

#[derive(Clone)]
struct ProbeClient(RawRef<Probe>);

impl AgentClient<Probe> for ProbeClient {
    fn troupe_from_raw(raw: RawRef<Probe>) -> Self {
        ProbeClient(raw)
    }
    fn troupe_raw(&self) -> &RawRef<Probe> {
        &self.0
    }
}

impl Agent for Probe {
    type Msg = ();
    type Reply = Identifier;
    type Client = ProbeClient;

    fn handle(
        &mut self,
        _msg: (),
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Option<Identifier>> + Send {
        let id = ctx.identifier(&self.node);
        async move { Some(id) }
    }
}

#[tokio::test]
async fn ref_and_context_give_the_same_agent_identifier_derived_from_the_node() {
    let seed = [9u8; 32];
    let node = Identity::from_seed(&seed);
    let system = System::new();
    let probe = system.spawn(Probe {
        node: Identity::from_seed(&seed),
    });
    let other = system.spawn(Probe {
        node: Identity::from_seed(&seed),
    });

    let from_ref = probe.identifier(&node);
    let from_ctx: Identifier = Request::new(probe.troupe_raw(), (), Some).await.unwrap();
    assert_eq!(from_ref, from_ctx);
    assert_eq!(
        from_ref,
        node.derive_agent_by_id(probe.id().as_u64()).identifier()
    );
    assert_ne!(from_ref, other.identifier(&node));
    assert_ne!(from_ref, node.identifier());
    system.shutdown().await;
}
