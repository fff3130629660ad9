//! The OpenTelemetry exporter (feature `otel`): each `troupe::handle` span becomes an
//! OpenTelemetry span with the same W3C ids, so that a call across nodes is one trace.
#![cfg(feature = "otel")]
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{Span as _, SpanId, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::span::{Attributes, Id};
use tracing::subscriber::DefaultGuard;
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
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
    #[handle]
    fn fail(&self) {
        panic!("out of paper");
    }
}

/// Forwards to a counter (on another node).
pub struct Front {
    counter: ActorRef<Counter>,
}

#[agent]
impl Front {
    #[handle]
    async fn forward(&self, n: u64) -> Result<(), CallError> {
        self.counter.add(n).await
    }
}

/// The fields of every `troupe::handle` span opened, as `tracing` recorded them: what
/// the exported spans must match.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Recorded {
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

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorded {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().target() == "troupe::handle" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

/// A subscriber that exports the handlers' spans to `exporter` (through its provider).
fn exporting_to(
    exporter: &InMemorySpanExporter,
) -> (
    SdkTracerProvider,
    impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
) {
    // ANCHOR: setup
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    let provider = SdkTracerProvider::builder()
        // The exported spans keep troupe's W3C ids (the SDK takes ids only from its
        // id generator): without it, a trace across nodes falls apart.
        .with_id_generator(troupe::otel::Ids::default())
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(troupe::otel::layer(provider.tracer("troupe")));
    // ANCHOR_END: setup
    (provider, subscriber)
}

/// An exporter that keeps the spans in memory, behind the layer; a layer that records
/// the `tracing` fields; both as this thread's subscriber until dropped.
struct Exporting {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    recorded: Recorded,
    _guard: DefaultGuard,
}

impl Exporting {
    /// Through `troupe::otel::layer`.
    fn start() -> Exporting {
        let exporter = InMemorySpanExporter::default();
        let (provider, subscriber) = exporting_to(&exporter);
        let recorded = Recorded::default();
        let guard = tracing::subscriber::set_default(subscriber.with(recorded.clone()));
        Exporting {
            exporter,
            provider,
            recorded,
            _guard: guard,
        }
    }

    /// Through an unfiltered `OtelLayer`.
    fn start_unfiltered() -> Exporting {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_id_generator(troupe::otel::Ids::default())
            .with_simple_exporter(exporter.clone())
            .build();
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry()
            .with(troupe::otel::OtelLayer::new(provider.tracer("troupe")))
            .with(recorded.clone());
        Exporting {
            exporter,
            provider,
            recorded,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }

    fn reset(&self) {
        self.exporter.reset();
        self.recorded.taken();
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The exported span's ids are the ones `tracing` recorded for it.
fn assert_same_ids(span: &SpanData, fields: &BTreeMap<String, String>) {
    assert_eq!(
        format!("{:032x}", span.span_context.trace_id()),
        fields["trace_id"],
        "{fields:?}"
    );
    assert_eq!(
        format!("{:016x}", span.span_context.span_id()),
        fields["span_id"],
        "{fields:?}"
    );
    match fields.get("parent_span_id") {
        Some(parent) => assert_eq!(&format!("{:016x}", span.parent_span_id), parent),
        None => assert_eq!(span.parent_span_id, SpanId::INVALID),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_across_nodes_is_exported_as_one_trace() {
    let otel = Exporting::start();
    let (system_a, system_b) = (System::new(), System::new());
    let node_b = Node::builder()
        .trust(TrustPolicy::any())
        .start(&system_b)
        .await
        .unwrap();
    let counter = system_b.spawn(Counter::default());
    node_b
        .export("counter", &counter)
        .unwrap()
        .policy("true")
        .unwrap();
    let node_a = Node::builder()
        .identity(Identity::from_seed(&[7; 32]))
        .trust(TrustPolicy::allow([node_b.identifier()]))
        .start(&system_a)
        .await
        .unwrap();
    let remote = node_a.lookup::<Counter>("counter", node_b.addr()).await.unwrap();
    let front = system_a.spawn(Front { counter: remote });
    // A registered agent's calls name it (its identity derives from the node's).
    system_a.register("front", &front).unwrap();
    otel.reset();

    front.forward(2).await.unwrap().unwrap();

    let spans = otel.spans();
    let recorded = otel.recorded.taken();
    assert_eq!((spans.len(), recorded.len()), (2, 2), "{spans:#?}");
    let (a, b) = (named(&spans, "Front::forward"), named(&spans, "Counter::add"));
    let (a, b) = (a[0], b[0]);
    let fields_of = |handler: &str| recorded.iter().find(|f| f["handler"] == handler).unwrap();
    assert_same_ids(a, fields_of("forward"));
    assert_same_ids(b, fields_of("add"));

    // One trace: node B's span is a child of node A's, through a remote parent.
    assert!(a.span_context.is_valid() && a.span_context.is_sampled());
    assert_eq!(b.span_context.trace_id(), a.span_context.trace_id());
    assert_eq!(b.parent_span_id, a.span_context.span_id());
    assert!(b.parent_span_is_remote);
    assert_ne!(b.span_context.span_id(), a.span_context.span_id());
    // Node A's span started the trace.
    assert_eq!(a.parent_span_id, SpanId::INVALID);

    // Who handled it, and for whom.
    assert_eq!(a.span_kind, SpanKind::Internal);
    assert_eq!(b.span_kind, SpanKind::Server);
    assert_eq!(attribute(a, "troupe.agent").as_deref(), Some("Front"));
    assert_eq!(attribute(a, "troupe.handler").as_deref(), Some("forward"));
    assert_eq!(attribute(a, "troupe.id"), Some(front.id().to_string()));
    assert_eq!(attribute(a, "troupe.caller_node"), None);
    assert_eq!(attribute(b, "troupe.agent").as_deref(), Some("Counter"));
    assert_eq!(attribute(b, "troupe.handler").as_deref(), Some("add"));
    assert_eq!(attribute(b, "troupe.id"), Some(counter.id().to_string()));
    assert_eq!(
        attribute(b, "troupe.caller_node"),
        Some(node_a.identifier().to_string())
    );
    assert_eq!(
        attribute(b, "troupe.caller_agent"),
        Some(
            Identity::from_seed(&[7; 32])
                .derive_agent("front")
                .identifier()
                .to_string()
        )
    );

    // The spans last as long as the handling: B's handler ran inside A's call.
    assert!(a.start_time <= b.start_time && b.start_time <= b.end_time && b.end_time <= a.end_time);

    // Another request, another trace.
    front.forward(3).await.unwrap().unwrap();
    let again = otel.spans();
    let traces: std::collections::HashSet<_> = again.iter().map(|s| s.span_context.trace_id()).collect();
    assert_eq!((again.len(), traces.len()), (4, 2));

    // A span the layer did not build gets ids of its own: the ones offered for node B's
    // span (whose trace id the SDK took from its parent) were withdrawn.
    let other = otel.provider.tracer("other").start("other");
    assert!(!traces.contains(&other.span_context().trace_id()));
    assert!(!again
        .iter()
        .any(|s| s.span_context.span_id() == other.span_context().span_id()));
    drop(other);

    node_a.shutdown().await;
    node_b.shutdown().await;
    system_a.shutdown().await;
    system_b.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_with_no_caller_is_a_root_span() {
    let otel = Exporting::start();
    let system = System::new();
    let counter = system.spawn(Counter::default());
    counter.add(1).await.unwrap();

    let spans = otel.spans();
    let recorded = otel.recorded.taken();
    assert_eq!((spans.len(), recorded.len()), (1, 1), "{spans:#?}");
    let span = &spans[0];
    assert_same_ids(span, &recorded[0]);
    assert_eq!(span.name, "Counter::add");
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert!(!span.parent_span_is_remote);
    assert_eq!(span.span_kind, SpanKind::Internal);
    assert_eq!(attribute(span, "troupe.agent").as_deref(), Some("Counter"));
    assert_eq!(attribute(span, "troupe.id"), Some(counter.id().to_string()));
    assert_eq!(attribute(span, "troupe.caller_node"), None);
    assert_eq!(attribute(span, "troupe.caller_agent"), None);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attribute(span, "troupe.panic"), None);
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_handler_that_panics_is_exported_with_an_error_status() {
    let _quiet = troupe::quiet_agent_panics();
    let otel = Exporting::start();
    let system = System::new();
    let counter = system.spawn(Counter::default());
    assert!(counter.fail().await.is_err());

    let spans = otel.spans();
    let failed = named(&spans, "Counter::fail");
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert_eq!(failed[0].status, Status::error("out of paper"));
    assert_eq!(
        attribute(failed[0], "troupe.panic").as_deref(),
        Some("out of paper")
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn spans_of_other_targets_are_not_exported() {
    // Filtered (the layer sees only `troupe::handle`) and unfiltered (it sees all, and
    // picks).
    for start in [Exporting::start as fn() -> Exporting, Exporting::start_unfiltered] {
        let otel = start();
        let system = System::new();
        let counter = system.spawn(Counter::default());
        tracing::info_span!("request").in_scope(|| {
            tracing::debug_span!(target: "troupe::handler", "handle").in_scope(|| {
                tracing::debug_span!(target: "troupe::handle", "not_a_handler").in_scope(|| {
                    tracing::info!(target: "troupe::handle", "an event");
                });
            });
        });
        counter.add(1).await.unwrap();

        let spans = otel.spans();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        assert_eq!(spans[0].name, "Counter::add");
        system.shutdown().await;
    }
}
