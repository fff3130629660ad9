//! Observability: the `troupe::handle` span around every handled message.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use troupe::abac::Policy;
use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};

#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }

    /// The name of the span the handler runs in.
    #[handle]
    async fn current_span(&self) -> String {
        tokio::task::yield_now().await;
        tracing::Span::current()
            .metadata()
            .map_or("none", |m| m.name())
            .to_owned()
    }
}

/// The fields of every `troupe::handle` span created, with its level.
#[derive(Clone, Default)]
struct HandleSpans(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl HandleSpans {
    fn taken(&self) -> Vec<BTreeMap<String, String>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for HandleSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().target() != "troupe::handle" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        fields
            .0
            .insert("level".into(), attrs.metadata().level().to_string());
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_handled_message_gets_a_debug_span_naming_agent_and_handler() {
    let spans = HandleSpans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let system = System::new();
    let counter = system.spawn(Counter::default());
    counter.add(2).await.unwrap();
    // The handler runs inside its span, across its awaits.
    assert_eq!(counter.current_span().await.unwrap(), "handle");
    let seen = spans.taken();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let id = counter.id().to_string();
    for (span, handler) in seen.iter().zip(["add", "current_span"]) {
        assert_eq!(span["level"], "DEBUG");
        assert_eq!(span["agent"], "Counter");
        assert_eq!(span["handler"], handler);
        assert_eq!(span["id"], id);
        // A local sender: no caller fields.
        assert!(!span.contains_key("caller_node"), "{span:?}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_filtering_at_info_gets_no_handle_spans() {
    let spans = HandleSpans::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let system = System::new();
    let counter = system.spawn(Counter::default());
    counter.add(2).await.unwrap();
    assert_eq!(counter.current_span().await.unwrap(), "none");
    assert!(spans.taken().is_empty());
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_from_another_node_names_the_calling_node_in_its_span() {
    let spans = HandleSpans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let system = System::new();
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .start(&system)
        .await
        .unwrap();
    server.set_default_policy(Some(Policy::parse("true").unwrap()));
    let counter = system.spawn(Counter::default());
    server.export("counter", &counter).unwrap();
    let client = Node::builder()
        .trust(TrustPolicy::allow([server.identifier()]))
        .start(&system)
        .await
        .unwrap();
    let remote = client.lookup::<Counter>("counter", server.addr()).await.unwrap();
    remote.add(1).await.unwrap();
    let seen = spans.taken();
    let span = seen
        .iter()
        .find(|s| s["handler"] == "add")
        .expect("a span for the remote add");
    assert_eq!(span["agent"], "Counter");
    assert_eq!(span["caller_node"], client.identifier().to_string());
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}
