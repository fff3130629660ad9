//! Access control on the remote path: credentials from a trusted authority, policies on
//! exports and handlers, denials that reach the caller and the audit log.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use troupe::abac::Policy;
use troupe::prelude::*;
use troupe::secure::{attrs, Authority, Credential, Node, TrustPolicy};

#[path = "support/captured_log.rs"]
mod captured_log;
use captured_log::CapturedLog;

#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }
    #[handle]
    fn reset(&mut self) {
        self.count = 0;
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn caller(system: &System, identity: Identity, credential: Option<Credential>, server: &Node) -> Node {
    let mut b = Node::builder()
        .identity(identity)
        .trust(TrustPolicy::allow([server.identifier()]));
    if let Some(c) = credential {
        b = b.credential(c);
    }
    b.start(system).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_policies_decide_every_remote_call() {
    let audit = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(audit.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global: the node's tasks run on the runtime's worker threads. (The other test in
    // this file logs too; lines are told apart by caller identifier below.)
    let _ = tracing::subscriber::set_global_default(subscriber);

    let system = System::new();
    let authority = Authority::generate();
    let (research, stranger, fading) = (Identity::generate(), Identity::generate(), Identity::generate());
    let research_id = research.identifier();
    let ours = [research_id, stranger.identifier(), fading.identifier()].map(|i| i.to_string());
    let research_cred = authority
        .issue(
            research_id,
            attrs! { "team" => "research", "role" => "planner" },
            Duration::from_secs(3600),
        )
        .unwrap();
    // Valid for two more seconds only.
    let fading_cred = authority
        .issue_between(
            fading.identifier(),
            attrs! { "team" => "research" },
            now() - 10,
            now() + 2,
        )
        .unwrap();

    // ANCHOR: guard
    let server = Node::builder()
        .trust(TrustPolicy::any()) // anyone may connect; the policies decide
        .trust_authority(authority.identifier()) // whose credentials count
        .start(&system)
        .await
        .unwrap();
    let counter = system.spawn(Counter::default());
    let export = server
        .export("counter", &counter)
        .unwrap()
        .policy(r#"team = "research""#)
        .unwrap()
        .handler_policy("reset", r#"role = "admin""#)
        .unwrap();
    // ANCHOR_END: guard

    // ANCHOR: call
    // A node whose credential says team=research may call get and add, not reset.
    let b = Node::builder()
        .identity(research)
        .trust(TrustPolicy::allow([server.identifier()]))
        .credential(research_cred) // presented to every node it links to
        .start(&system)
        .await
        .unwrap();
    let remote = b.lookup::<Counter>("counter", server.addr()).await.unwrap();
    remote.add(2).await.unwrap();
    assert_eq!(remote.get().await, Ok(2));
    assert_eq!(remote.reset().await, Err(CallError::Denied));
    // ANCHOR_END: call
    assert_eq!(counter.get().await, Ok(2), "the denied handler never ran");
    // Local callers are not subject to the policies.
    counter.reset().await.unwrap();

    // A node without a credential is denied everything, casts included.
    let c = caller(&system, stranger, None, &server).await;
    let remote_c = c.lookup::<Counter>("counter", server.addr()).await.unwrap();
    assert_eq!(remote_c.get().await, Err(CallError::Denied));
    remote_c.add(100).cast().await.unwrap();
    assert_eq!(remote.get().await, Ok(0), "the denied cast was not delivered");

    // A credential that expires while the link is open stops counting at its expiry.
    let d = caller(&system, fading, Some(fading_cred), &server).await;
    let remote_d = d.lookup::<Counter>("counter", server.addr()).await.unwrap();
    assert_eq!(remote_d.get().await, Ok(0));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(remote_d.get().await, Err(CallError::Denied));

    // Policies change while everything runs; the next message sees the new one.
    let _ = export.handler_policy("reset", r#"role = "planner""#).unwrap();
    assert_eq!(remote.reset().await, Ok(()));

    // Every denial is in the audit log, with who, what and which policy.
    let log = audit.text();
    let denials: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("remote message denied") && ours.iter().any(|id| l.contains(id.as_str())))
        .collect();
    assert_eq!(denials.len(), 4, "{log}");
    assert!(
        denials[0].contains("handler=\"reset\"") || denials[0].contains("handler=reset"),
        "{}",
        denials[0]
    );
    assert!(denials[0].contains(&research_id.to_string()), "{}", denials[0]);
    assert!(
        denials[0].contains("role = \\\"admin\\\"") || denials[0].contains("role = \"admin\""),
        "{}",
        denials[0]
    );
    assert!(
        denials
            .iter()
            .any(|l| l.contains("kind=\"cast\"") || l.contains("kind=cast")),
        "{log}"
    );
    for n in [&b, &c, &d, &server] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_policy_means_deny_and_an_invalid_credential_means_no_attributes() {
    let system = System::new();
    let authority = Authority::generate();
    let impostor_authority = Authority::generate();
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .trust_authority(authority.identifier())
        .start(&system)
        .await
        .unwrap();
    server.export("open", &system.spawn(Counter::default())).unwrap();
    server
        .export("research", &system.spawn(Counter::default()))
        .unwrap()
        .policy("has_credential")
        .unwrap();
    // An export without a policy denies every remote caller.
    let me = Identity::generate();
    let my_id = me.identifier();
    // A credential from an authority the server does not trust: the link is accepted,
    // but the caller has no attributes (case C14, pinned).
    let forged = impostor_authority
        .issue(my_id, attrs! { "team" => "research" }, Duration::from_secs(60))
        .unwrap();
    let node = caller(&system, me, Some(forged), &server).await;
    let open = node.lookup::<Counter>("open", server.addr()).await.unwrap();
    assert_eq!(open.get().await, Err(CallError::Denied));
    let research = node.lookup::<Counter>("research", server.addr()).await.unwrap();
    assert_eq!(research.get().await, Err(CallError::Denied));
    // A node default opens exports without their own policy; a valid credential,
    // refreshed on the open link, then counts.
    server.set_default_policy(Some(Policy::parse("true").unwrap()));
    assert_eq!(open.get().await, Ok(0));
    let real = authority
        .issue(my_id, attrs! { "team" => "research" }, Duration::from_secs(60))
        .unwrap();
    node.refresh_credential(real).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(research.get().await, Ok(0));
    // A refresh carrying another subject is refused (case C7): attributes are dropped.
    let someone_else = authority
        .issue(
            Identity::generate().identifier(),
            attrs! { "team" => "research" },
            Duration::from_secs(60),
        )
        .unwrap();
    node.refresh_credential(someone_else).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(research.get().await, Err(CallError::Denied));
    node.shutdown().await;
    server.shutdown().await;
}

// ANCHOR: declared
/// An agent that declares who may call a handler, next to the handler.
#[derive(Default)]
pub struct Vault {
    opened: u32,
}

#[agent(remote)]
impl Vault {
    #[handle]
    fn peek(&self) -> u32 {
        self.opened
    }
    #[handle(policy = r#"role = "admin""#)]
    fn open(&mut self) -> u32 {
        self.opened += 1;
        self.opened
    }
}
// ANCHOR_END: declared

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_declared_on_handlers_apply_when_exported_and_can_be_overridden() {
    let system = System::new();
    let authority = Authority::generate();
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .trust_authority(authority.identifier())
        .start(&system)
        .await
        .unwrap();
    let vault = server
        .export("vault", &system.spawn(Vault::default()))
        .unwrap()
        .policy("has_credential")
        .unwrap();
    let me = Identity::generate();
    let planner = authority
        .issue(
            me.identifier(),
            attrs! { "role" => "planner" },
            Duration::from_secs(60),
        )
        .unwrap();
    let node = caller(&system, me, Some(planner), &server).await;
    let remote = node.lookup::<Vault>("vault", server.addr()).await.unwrap();
    assert_eq!(remote.peek().await, Ok(0), "the export's policy");
    assert_eq!(remote.open().await, Err(CallError::Denied), "the handler's own");
    let _ = vault.handler_policy("open", r#"role = "planner""#).unwrap();
    assert_eq!(remote.open().await, Ok(1), "overridden at run time");
    node.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_carry_attributes_and_nodes_and_authorities_reserve_names() {
    let system = System::new();
    // An authority that refuses to issue `clearance`, and one that does not.
    let strict = Authority::generate().reserve_attribute("clearance");
    let lax = Authority::generate();
    let me = Identity::generate();
    assert!(strict
        .issue(
            me.identifier(),
            attrs! { "clearance" => "top" },
            Duration::from_secs(60)
        )
        .is_err());
    let claims_clearance = lax
        .issue(
            me.identifier(),
            attrs! { "clearance" => "top", "team" => "ops" },
            Duration::from_secs(60),
        )
        .unwrap();
    // The node reserves `clearance` too: what `lax` says about it never counts.
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .trust_authority(lax.identifier())
        .reserve_attribute("clearance")
        .start(&system)
        .await
        .unwrap();
    let export = server
        .export("vault", &system.spawn(Vault::default()))
        .unwrap()
        .attribute("sensitivity", "high")
        .unwrap()
        .policy(
            r#"(or (and (= subject.team "ops") (= resource.sensitivity "low")) (= subject.clearance "top"))"#,
        )
        .unwrap();
    let node = caller(&system, me, Some(claims_clearance), &server).await;
    let vault = node.lookup::<Vault>("vault", server.addr()).await.unwrap();
    assert_eq!(
        vault.peek().await,
        Err(CallError::Denied),
        "clearance dropped, sensitivity high"
    );
    let _ = export.attribute("sensitivity", "low").unwrap();
    assert_eq!(
        vault.peek().await,
        Ok(0),
        "the export's attribute counts, changed at run time"
    );
    assert!(
        server
            .export("other", &system.spawn(Vault::default()))
            .unwrap()
            .attribute("name", "x")
            .is_err(),
        "resource.name is the node's"
    );
    node.shutdown().await;
    server.shutdown().await;
}
