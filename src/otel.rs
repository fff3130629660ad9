//! Exporting the `troupe::handle` spans to OpenTelemetry (feature `otel`, off by
//! default).
//!
//! Every handled message runs inside a `tracing` span (target `troupe::handle`, level
//! `DEBUG`) that carries W3C trace ids, and a call from a handler to another node
//! carries them along, so that the handler there continues the same trace. [`layer`]
//! turns each of these spans into an OpenTelemetry span with exactly those ids: the
//! nodes of a request can export to one backend (through OTLP, say) and it shows one
//! trace, across nodes.
//!
//! You pick the exporter by building the tracer provider; give it [`Ids`], through
//! which the SDK takes the ids of troupe's spans:
//!
//! ```
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
//! use tracing_subscriber::prelude::*;
//!
//! /// Sends the handlers' spans to `exporter` (e.g. `opentelemetry_otlp::SpanExporter`);
//! /// keep the provider, and shut it down at exit to flush what is left.
//! fn export_traces(exporter: impl SpanExporter + 'static) -> SdkTracerProvider {
//!     let provider = SdkTracerProvider::builder()
//!         .with_id_generator(troupe::otel::Ids::default())
//!         .with_batch_exporter(exporter)
//!         .build();
//!     tracing_subscriber::registry()
//!         .with(troupe::otel::layer(provider.tracer("troupe")))
//!         .init();
//!     provider
//! }
//! ```
//!
//! Each exported span is named `Agent::handler` and has:
//!
//! | | |
//! |---|---|
//! | trace id, span id | the `trace_id` and `span_id` fields of the `troupe::handle` span |
//! | parent | for a message from another node that came in a trace, the calling handler's span (a remote parent: the `parent_span_id` field); otherwise none |
//! | kind | `Server` for a message from another node, `Internal` otherwise |
//! | start, end | when the span opened and closed: the handling of the message |
//! | attributes | `troupe.agent`, `troupe.id`, `troupe.handler`, and for a message from another node `troupe.caller_node`, `troupe.caller_agent` (when its node named it) |
//!
//! Spans of other targets are not exported, nor even enabled by this layer: [`layer`]
//! filters itself to `troupe::handle`, so it costs nothing elsewhere. If a filter in
//! front of it (a global `EnvFilter`, say) turns `DEBUG` off for `troupe::handle`,
//! there are no spans to export.
//!
//! Why not `tracing-opentelemetry`: it gives each span ids of the SDK's choosing,
//! whereas a trace across nodes needs the ids that troupe already sent to the other
//! node (the remote handler's parent is the caller's `span_id`). Linking them through
//! it would make the runtime depend on OpenTelemetry; this layer only reads the span's
//! fields, and the runtime stays free of it.

use std::cell::Cell;
use std::fmt;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The target of the spans around handled messages (see the module docs).
const HANDLE_TARGET: &str = "troupe::handle";

/// The name of those spans.
const HANDLE_NAME: &str = "handle";

/// The [`OtelLayer`] exporting through `tracer`, filtered to the `troupe::handle` spans:
/// added to a `tracing_subscriber::registry()`, it enables those spans (level `DEBUG`)
/// and nothing else; the other layers still see what their own filters let through.
///
/// Give the tracer's provider [`Ids`], or the exported spans get ids of the SDK's
/// choosing and a trace across nodes falls apart (see [`OtelLayer`]).
pub fn layer<S, T>(tracer: T) -> Filtered<OtelLayer<T>, Targets, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    OtelLayer::new(tracer).with_filter(Targets::new().with_target(HANDLE_TARGET, Level::DEBUG))
}

/// A `tracing_subscriber` layer that exports each `troupe::handle` span through an
/// OpenTelemetry tracer, with the ids the span carries (see the module docs for what
/// the exported span holds). Other spans and events pass by.
///
/// [`layer`] gives it filtered to the spans it exports; unfiltered, as a plain layer,
/// it makes every span and event of the program enabled (which costs whatever they
/// cost), and still exports only `troupe::handle` spans.
///
/// The tracer's provider must use [`Ids`] as its id generator: the OpenTelemetry SDK
/// (0.33) ignores ids given any other way, and takes them only from its generator,
/// which [`Ids`] lets this layer feed.
pub struct OtelLayer<T> {
    tracer: T,
}

impl<T> OtelLayer<T> {
    /// Exports through `tracer`.
    pub fn new(tracer: T) -> OtelLayer<T> {
        OtelLayer { tracer }
    }
}

impl<T> fmt::Debug for OtelLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLayer").finish_non_exhaustive()
    }
}

/// The OpenTelemetry span of a `troupe::handle` span, kept in the span's extensions
/// from its opening to its closing.
struct Exported<S>(S);

impl<S, T> Layer<S> for OtelLayer<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        if metadata.target() != HANDLE_TARGET || metadata.name() != HANDLE_NAME {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = HandleFields::default();
        attrs.record(&mut fields);
        let exported = fields.start(&self.tracer);
        span.extensions_mut().insert(Exported(exported));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut panic = PanicField(None);
        values.record(&mut panic);
        let Some(message) = panic.0 else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(Exported(exported)) = extensions.get_mut::<Exported<T::Span>>() {
            exported.set_attribute(KeyValue::new("troupe.panic", message.clone()));
            exported.set_status(Status::error(message));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        // Bound before it ends so that the extensions' lock is not held while the
        // tracer's processors run.
        let exported = span.extensions_mut().remove::<Exported<T::Span>>();
        if let Some(Exported(mut exported)) = exported {
            exported.end_with_timestamp(SystemTime::now());
        }
    }
}

/// What a `troupe::handle` span says, as recorded when it opened.
#[derive(Default)]
struct HandleFields {
    agent: Option<String>,
    id: Option<String>,
    handler: Option<String>,
    caller_node: Option<String>,
    caller_agent: Option<String>,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    parent_span_id: Option<SpanId>,
}

impl HandleFields {
    /// Starts the OpenTelemetry span: our ids (fed to the SDK through [`Ids`]), our
    /// parent as a remote span context, kind, attributes, start time now.
    fn start<T: Tracer>(self, tracer: &T) -> T::Span {
        let parent = self.parent();
        let name = match (&self.agent, &self.handler) {
            (Some(agent), Some(handler)) => format!("{agent}::{handler}"),
            _ => HANDLE_NAME.to_owned(),
        };
        let kind = if self.caller_node.is_some() {
            SpanKind::Server
        } else {
            SpanKind::Internal
        };
        let attributes = [
            ("troupe.agent", self.agent),
            ("troupe.id", self.id),
            ("troupe.handler", self.handler),
            ("troupe.caller_node", self.caller_node),
            ("troupe.caller_agent", self.caller_agent),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(KeyValue::new(key, value?)))
        .collect::<Vec<_>>();
        let builder = SpanBuilder::from_name(name)
            .with_kind(kind)
            .with_start_time(SystemTime::now())
            .with_attributes(attributes);
        let _staged = Staged::new(self.trace_id, self.span_id);
        tracer.build_with_context(builder, &parent)
    }

    /// The caller's span, on the node it called from (sampled, as troupe samples every
    /// traced message); none for a new trace.
    fn parent(&self) -> OtelContext {
        let (Some(trace_id), Some(parent)) = (self.trace_id, self.parent_span_id) else {
            return OtelContext::new();
        };
        let remote = SpanContext::new(trace_id, parent, TraceFlags::SAMPLED, true, TraceState::default());
        OtelContext::new().with_remote_span_context(remote)
    }
}

impl Visit for HandleFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The ids and identifiers are recorded as `Display` values, whose `Debug`
        // prints the same text.
        self.record(field, format!("{value:?}"));
    }
}

impl HandleFields {
    fn record(&mut self, field: &Field, text: String) {
        match field.name() {
            "agent" => self.agent = Some(text),
            "id" => self.id = Some(text),
            "handler" => self.handler = Some(text),
            "caller_node" => self.caller_node = Some(text),
            "caller_agent" => self.caller_agent = Some(text),
            // Ids that do not parse (or are all zero) are left to the SDK.
            "trace_id" => self.trace_id = TraceId::from_hex(&text).ok().filter(|t| *t != TraceId::INVALID),
            "span_id" => self.span_id = SpanId::from_hex(&text).ok().filter(|s| *s != SpanId::INVALID),
            "parent_span_id" => {
                self.parent_span_id = SpanId::from_hex(&text).ok().filter(|s| *s != SpanId::INVALID);
            }
            _ => {}
        }
    }
}

/// The `panic` field, recorded on a `troupe::handle` span when its handler panicked.
struct PanicField(Option<String>);

impl Visit for PanicField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "panic" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "panic" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

thread_local! {
    /// The ids [`OtelLayer`] wants for the span it is building on this thread.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// The ids of the span being built on this thread, offered to [`Ids`] until dropped
/// (so that ids the SDK did not take, e.g. the trace id of a span with a parent, never
/// reach another span).
struct Staged;

impl Staged {
    fn new(trace_id: Option<TraceId>, span_id: Option<SpanId>) -> Staged {
        NEXT_TRACE_ID.set(trace_id);
        NEXT_SPAN_ID.set(span_id);
        Staged
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        NEXT_TRACE_ID.set(None);
        NEXT_SPAN_ID.set(None);
    }
}

/// The id generator to give the tracer provider (`with_id_generator`): the spans that
/// [`OtelLayer`] exports get the W3C ids troupe gave them, every other span random
/// ones (as the SDK's default, `RandomIdGenerator`, makes).
///
/// The SDK takes a span's ids only from its provider's generator, when it builds the
/// span; the layer offers this generator the ids of the span it is about to build, on
/// the same thread, and withdraws them right after.
#[derive(Debug, Default)]
pub struct Ids {
    random: RandomIdGenerator,
}

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID.take().unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID.take().unwrap_or_else(|| self.random.new_span_id())
    }
}
