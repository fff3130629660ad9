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
use troupe::CallError;

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

// --- System::stats and the metrics facade ---

#[derive(Default)]
pub struct Worker {
    done: u64,
}

#[agent]
impl Worker {
    #[handle]
    fn work(&mut self) {
        self.done += 1;
    }

    #[handle]
    fn done(&self) -> u64 {
        self.done
    }

    #[handle]
    fn crash(&self) {
        panic!("asked to crash");
    }

    /// Takes at least `ms` milliseconds of real time.
    #[handle]
    fn busy(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    /// Sleeps `ms` milliseconds (on tokio's clock).
    #[handle]
    async fn nap(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }

    /// Waits until `gate` is opened.
    #[handle]
    async fn hold(&self, gate: Arc<tokio::sync::Notify>) {
        gate.notified().await;
    }
}

// ANCHOR: stats
#[tokio::test(flavor = "current_thread")]
async fn stats_count_messages_crashes_restarts_and_timeouts_per_agent_type() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("worker", Worker::default))
        .spawn(&system);
    let worker: ActorRef<Worker> = sup.child("worker").unwrap();
    let other = system.spawn(Counter::default());
    for _ in 0..5 {
        worker.work().cast().await.unwrap();
    }
    assert_eq!(worker.done().await.unwrap(), 5);
    other.add(1).await.unwrap();
    let stats = system.stats();
    let w = stats.agent_type("Worker").unwrap();
    assert_eq!((w.live, w.messages_handled, w.crashes, w.restarts), (1, 6, 0, 0));
    assert_eq!(stats.agent_type("Counter").unwrap().messages_handled, 1);
    assert_eq!(stats.agents, 2);

    assert!(matches!(worker.crash().await, Err(CallError::Panicked(_))));
    assert_eq!(worker.done().await.unwrap(), 0, "a new instance answers");
    let w = system.stats().agent_type("Worker").unwrap().clone();
    assert_eq!((w.messages_handled, w.crashes, w.restarts), (8, 1, 1));
    assert_eq!(sup.restarts(), w.restarts);

    let slow = worker.nap(30).timeout(std::time::Duration::from_millis(1)).await;
    assert_eq!(slow, Err(CallError::Timeout));
    assert_eq!(system.stats().agent_type("Worker").unwrap().calls_timed_out, 1);
    assert_eq!(system.stats().agent_type("Counter").unwrap().calls_timed_out, 0);
    system.shutdown().await;
    // Counters outlive the agents; nothing is live any more.
    let w = system.stats().agent_type("Worker").unwrap().clone();
    // (The timed-out call was handled all the same.)
    assert_eq!((w.live, w.messages_handled), (0, 9));
}
// ANCHOR_END: stats

#[tokio::test(flavor = "current_thread")]
async fn stats_show_each_mailbox_depth_as_it_is_now() {
    let system = System::new();
    let (a, b) = (system.spawn(Worker::default()), system.spawn(Worker::default()));
    let gate = Arc::new(tokio::sync::Notify::new());
    a.hold(gate.clone()).cast().await.unwrap();
    b.hold(gate.clone()).cast().await.unwrap();
    tokio::task::yield_now().await; // both are now waiting in `hold`
    for _ in 0..3 {
        a.work().cast().await.unwrap();
    }
    b.work().cast().await.unwrap();
    let w = system.stats().agent_type("Worker").unwrap().clone();
    assert_eq!((w.live, w.mailbox_depth, w.max_mailbox_depth), (2, 4, 3));
    gate.notify_waiters();
    assert_eq!(a.done().await.unwrap(), 3);
    assert_eq!(b.done().await.unwrap(), 1);
    let w = system.stats().agent_type("Worker").unwrap().clone();
    assert_eq!((w.mailbox_depth, w.max_mailbox_depth), (0, 0));
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn handling_time_samples_one_message_in_sample_every() {
    let system = System::new();
    let worker = system.spawn(Worker::default());
    let n = 2 * troupe::stats::SAMPLE_EVERY;
    for _ in 0..n {
        worker.busy(1).await.unwrap();
    }
    let h = system.stats().agent_type("Worker").unwrap().handling_time.clone();
    assert_eq!(h.samples, 2);
    assert!(h.mean().unwrap() >= std::time::Duration::from_millis(1), "{h:?}");
    // Every sample is in a bucket whose bound is at least 1 ms.
    assert!(
        h.quantile(0.0).unwrap() >= std::time::Duration::from_millis(1),
        "{h:?}"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn stats_serialize_as_json() {
    let system = System::new();
    let worker = system.spawn(Worker::default());
    worker.work().await.unwrap();
    let json = serde_json::to_value(system.stats()).unwrap();
    assert_eq!(json["agents"], 1);
    let w = &json["agent_types"][0];
    assert_eq!(w["agent"], "Worker");
    assert_eq!(w["messages_handled"], 1);
    assert_eq!(w["mailbox_depth"], 0);
    assert!(w["handling_time"]["buckets"].is_array());
    let back: troupe::Stats = serde_json::from_value(json).unwrap();
    assert_eq!(back, system.stats());
    system.shutdown().await;
}

/// A `metrics` recorder that keeps the last value of every counter and gauge and every
/// histogram sample, by name and labels (`k=v,k=v`, sorted).
#[derive(Default, Clone)]
struct Recorded(Values);

/// Values by (name, labels).
type Values = Arc<Mutex<BTreeMap<(String, String), Vec<f64>>>>;

struct Slot(Values, (String, String));

impl metrics::CounterFn for Slot {
    fn increment(&self, value: u64) {
        let mut m = self.0.lock().unwrap();
        let v = m.entry(self.1.clone()).or_insert_with(|| vec![0.0]);
        v[0] += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.0.lock().unwrap().insert(self.1.clone(), vec![value as f64]);
    }
}

impl metrics::GaugeFn for Slot {
    fn increment(&self, value: f64) {
        self.0
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_insert_with(|| vec![0.0])[0] += value;
    }
    fn decrement(&self, value: f64) {
        self.increment(-value)
    }
    fn set(&self, value: f64) {
        self.0.lock().unwrap().insert(self.1.clone(), vec![value]);
    }
}

impl metrics::HistogramFn for Slot {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default()
            .push(value);
    }
}

impl Recorded {
    fn slot(&self, key: &metrics::Key) -> Arc<Slot> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Slot(self.0.clone(), (key.name().to_owned(), labels.join(","))))
    }
    fn get(&self, name: &str, agent: &str) -> Vec<f64> {
        self.labelled(name, &format!("agent={agent}"))
    }
    fn labelled(&self, name: &str, labels: &str) -> Vec<f64> {
        self.0
            .lock()
            .unwrap()
            .get(&(name.to_owned(), labels.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.slot(key))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn record_metrics_publishes_the_stats_through_the_metrics_facade() {
    use troupe::stats::names;
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("worker", Worker::default))
        .spawn(&system);
    let worker: ActorRef<Worker> = sup.child("worker").unwrap();
    for _ in 0..troupe::stats::SAMPLE_EVERY {
        worker.busy(1).await.unwrap();
    }
    let _ = worker.crash().await;
    worker.work().await.unwrap();
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || system.record_metrics());
    let handled = (troupe::stats::SAMPLE_EVERY + 2) as f64;
    assert_eq!(recorded.get(names::MESSAGES_HANDLED, "Worker"), [handled]);
    assert_eq!(recorded.get(names::CRASHES, "Worker"), [1.0]);
    assert_eq!(recorded.get(names::RESTARTS, "Worker"), [1.0]);
    assert_eq!(recorded.get(names::CALLS_TIMED_OUT, "Worker"), [0.0]);
    assert_eq!(recorded.get(names::MAILBOX_DEPTH, "Worker"), [0.0]);
    assert_eq!(recorded.get(names::AGENTS, "Worker"), [1.0]);
    // Two samples (messages 0 and SAMPLE_EVERY: the first `busy`, about a millisecond,
    // and the crash), each published as its bucket's middle.
    let samples = recorded.get(names::HANDLING_SECONDS, "Worker");
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert!(samples.iter().any(|&s| (0.0005..0.1).contains(&s)), "{samples:?}");
    // A second publication adds no sample already published.
    metrics::with_local_recorder(&recorded, || system.record_metrics());
    assert_eq!(recorded.get(names::HANDLING_SECONDS, "Worker").len(), 2);
    system.shutdown().await;
}

// --- Node::stats ---

async fn server_and_client(system: &System) -> (Node, Node, ActorRef<Counter>) {
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .start(system)
        .await
        .unwrap();
    let counter = system.spawn(Counter::default());
    server.export("open", &counter).unwrap().policy("true").unwrap();
    // No policy: remote callers are denied.
    server
        .export("closed", &system.spawn(Counter::default()))
        .unwrap();
    let client = Node::builder()
        .trust(TrustPolicy::allow([server.identifier()]))
        .start(system)
        .await
        .unwrap();
    (server, client, counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stats_count_link_traffic_handshakes_and_access_decisions() {
    let system = System::new();
    let (server, client, _) = server_and_client(&system).await;
    let open = client.lookup::<Counter>("open", server.addr()).await.unwrap();
    let closed = client.lookup::<Counter>("closed", server.addr()).await.unwrap();
    let before_in = server.stats().link(&client.identifier()).unwrap().clone();
    let before_out = client.stats().link(&server.identifier()).unwrap().clone();
    for _ in 0..10 {
        open.add(1).await.unwrap();
    }
    assert!(closed.add(1).await.is_err());
    let access = server.stats().access;
    assert_eq!((access.messages.allowed, access.messages.denied), (10, 1));
    assert_eq!((access.portals.allowed, access.portals.denied), (0, 0));
    // The client decided nothing.
    assert_eq!(client.stats().access.messages.allowed, 0);

    let after_in = server.stats().link(&client.identifier()).unwrap().clone();
    let after_out = client.stats().link(&server.identifier()).unwrap().clone();
    // 11 calls in, each a 13-byte header and its arguments; 11 replies (or failures) out.
    assert!(after_in.messages_in - before_in.messages_in >= 11, "{after_in:?}");
    assert!(after_in.bytes_in - before_in.bytes_in >= 11 * 13, "{after_in:?}");
    assert!(
        after_in.messages_out - before_in.messages_out >= 11,
        "{after_in:?}"
    );
    assert!(
        after_out.messages_out - before_out.messages_out >= 11,
        "{after_out:?}"
    );
    // What one side sent, the other received (nothing is in flight now).
    assert_eq!(after_out.bytes_out, after_in.bytes_in);
    assert_eq!(after_out.messages_out, after_in.messages_in);
    assert_eq!((after_in.handshakes, after_in.reconnects), (1, 0));
    assert!(after_in.connected && after_out.connected);
    let json = serde_json::to_value(server.stats()).unwrap();
    assert_eq!(json["access"]["messages"]["denied"], 1);
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_reconnects_counts_a_reconnect_and_a_handshake() {
    let system = System::new();
    let (server, client, _) = server_and_client(&system).await;
    let open = client.lookup::<Counter>("open", server.addr()).await.unwrap();
    open.add(1).await.unwrap();
    client.break_links();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let link = client.stats().link(&server.identifier()).unwrap().clone();
        if link.reconnects >= 1 && open.add(1).await.is_ok() {
            // The new link; both nodes may dial at once (one link is then retired).
            assert!(link.handshakes >= 2, "{link:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reconnect: {link:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn node_record_metrics_publishes_traffic_and_decisions() {
    use troupe::secure::metric_names as names;
    let system = System::new();
    let (server, client, _) = server_and_client(&system).await;
    let closed = client.lookup::<Counter>("closed", server.addr()).await.unwrap();
    assert!(closed.add(1).await.is_err());
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || server.record_metrics());
    let peer = format!("peer={}", client.identifier());
    let stats = server.stats();
    let link = stats.link(&client.identifier()).unwrap();
    assert_eq!(
        recorded.labelled(names::LINK_BYTES, &format!("direction=in,{peer}")),
        [link.bytes_in as f64]
    );
    assert_eq!(
        recorded.labelled(names::LINK_MESSAGES, &format!("direction=out,{peer}")),
        [link.messages_out as f64]
    );
    assert_eq!(recorded.labelled(names::LINK_HANDSHAKES, &peer), [1.0]);
    assert_eq!(recorded.labelled(names::LINK_RECONNECTS, &peer), [0.0]);
    assert_eq!(recorded.labelled(names::LINK_UP, &peer), [1.0]);
    let decisions =
        |d: &str, g: &str| recorded.labelled(names::ACCESS_DECISIONS, &format!("decision={d},guards={g}"));
    assert_eq!(decisions("denied", "message"), [1.0]);
    assert_eq!(decisions("allowed", "message"), [0.0]);
    assert_eq!(decisions("denied", "relay"), [0.0]);
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_and_relay_decisions_are_counted_apart_from_messages() {
    let system = System::new();
    let (server, client, _) = server_and_client(&system).await;
    // An outlet without a policy denies; an unknown outlet is denied too.
    server.outlet("db", "127.0.0.1:9").unwrap();
    assert!(client.connect_outlet(server.addr(), "db").await.is_err());
    assert!(client.connect_outlet(server.addr(), "nothing").await.is_err());
    // A relay denies every registration until a policy says otherwise.
    let relay = server.serve_relay();
    assert!(client.register_at(server.addr(), "first").await.is_err());
    let _relay = relay.register_policy("true").unwrap();
    let registration = client.register_at(server.addr(), "second").await.unwrap();
    let access = server.stats().access;
    assert_eq!((access.portals.allowed, access.portals.denied), (0, 2));
    assert_eq!((access.relays.allowed, access.relays.denied), (1, 1));
    assert_eq!((access.messages.allowed, access.messages.denied), (0, 0));
    registration.cancel();
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}

// --- System::tree as data ---

#[tokio::test(flavor = "current_thread")]
async fn the_tree_gives_each_agents_type_names_state_mailbox_restarts_and_messages() {
    use troupe::{AgentState, SupervisorState, TreeNode};
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("worker", Worker::default))
        .child(ChildSpec::supervisor(
            "inner",
            Supervisor::new(Strategy::OneForAll).child(ChildSpec::new("counter", Counter::default)),
        ))
        .spawn(&system);
    let worker: ActorRef<Worker> = sup.child("worker").unwrap();
    assert!(worker.crash().await.is_err());
    worker.work().await.unwrap();
    // A supervisor that waits a minute before restarting: its child stays "restarting".
    let slow = Supervisor::new(Strategy::OneForOne)
        .backoff(
            Backoff::exponential(
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(60),
            )
            .jitter(0.0),
        )
        .child(ChildSpec::new("flaky", Worker::default))
        .spawn(&system);
    let flaky: ActorRef<Worker> = slow.child("flaky").unwrap();
    assert!(flaky.crash().await.is_err());
    // An unsupervised, registered agent with three messages waiting.
    let held = system.spawn(Worker::default());
    system.register("held", &held).unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    held.hold(gate.clone()).cast().await.unwrap();
    tokio::task::yield_now().await;
    for _ in 0..3 {
        held.work().cast().await.unwrap();
    }
    // Let the slow supervisor's task take the crash report.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // ANCHOR: tree
    let tree = system.tree();
    assert_eq!((tree.agents(), tree.unsupervised()), (4, 1));
    let root = &tree.supervisors()[0];
    assert_eq!(
        (root.name.as_str(), root.strategy.as_str(), root.restarts),
        ("root", "one_for_one", 1)
    );
    assert_eq!(root.state, SupervisorState::Running);
    let w = tree.agent(worker.id()).unwrap();
    assert_eq!(
        (w.agent.as_str(), w.name.as_deref(), w.registered.as_deref()),
        ("Worker", Some("worker"), None)
    );
    assert_eq!(
        (w.state, w.restarts, w.mailbox_depth),
        (AgentState::Running, 1, 0)
    );
    // The message it crashed on and the one after, across the restart.
    assert_eq!(w.messages, 2);
    let TreeNode::Supervisor(inner) = &root.children[1] else {
        panic!("a nested supervisor: {:?}", root.children[1]);
    };
    assert_eq!(
        (inner.path.as_str(), inner.strategy.as_str()),
        ("root/inner", "one_for_all")
    );
    let TreeNode::Agent(counter) = &inner.children[0] else {
        panic!("an agent");
    };
    assert_eq!(
        (counter.agent.as_str(), counter.name.as_deref(), counter.messages),
        ("Counter", Some("counter"), 0)
    );
    let f = tree.agent(flaky.id()).unwrap();
    assert_eq!(
        (f.state, f.status.as_str()),
        (AgentState::Restarting, "restarting")
    );
    let h = tree.agent(held.id()).unwrap();
    assert_eq!((h.name.as_deref(), h.registered.as_deref()), (None, Some("held")));
    assert_eq!(
        (h.state, h.mailbox_depth, h.restarts, h.messages),
        (AgentState::Running, 3, 0, 1)
    );
    assert_eq!(tree.all_agents().len(), 4);

    // As JSON, and back.
    let json = serde_json::to_value(&tree).unwrap();
    let child = &json["supervisors"][0]["children"][0];
    assert_eq!(child["kind"], "agent");
    assert_eq!(child["name"], "worker");
    assert_eq!(child["state"], "running");
    assert_eq!(child["restarts"], 1);
    assert_eq!(json["supervisors"][0]["children"][1]["kind"], "supervisor");
    assert_eq!(json["supervisors"][1]["children"][0]["state"], "restarting");
    assert_eq!(json["unsupervised_agents"][0]["mailbox_depth"], 3);
    assert_eq!(json["unsupervised_agents"][0]["messages"], 1);
    assert_eq!(json["unsupervised_agents"][0]["registered"], "held");
    assert_eq!(serde_json::from_value::<troupe::Tree>(json).unwrap(), tree);
    // ANCHOR_END: tree
    // Printed as before.
    let text = tree.to_string();
    assert!(
        text.contains(&format!("worker: Worker {} running", worker.id()))
            || text.contains(&format!("worker: Worker {} idle", worker.id())),
        "{text}"
    );
    assert!(
        text.contains(&format!("flaky: Worker {} restarting", flaky.id())),
        "{text}"
    );
    gate.notify_waiters();
    system.shutdown().await;
    // Stopped agents leave the tree.
    assert_eq!(system.tree().all_agents().len(), 0);
}

// --- Trace context across nodes ---

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

#[tokio::test(flavor = "current_thread")]
async fn a_remote_call_continues_the_callers_trace_on_the_other_node() {
    let spans = HandleSpans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let system = System::new();
    let (server, client, _) = server_and_client(&system).await;
    let remote = client.lookup::<Counter>("open", server.addr()).await.unwrap();
    let front = system.spawn(Front { counter: remote });
    spans.taken();
    front.forward(2).await.unwrap().unwrap();
    front.forward(3).await.unwrap().unwrap();
    let seen = spans.taken();
    let fronts: Vec<_> = seen.iter().filter(|s| s["handler"] == "forward").collect();
    let adds: Vec<_> = seen.iter().filter(|s| s["handler"] == "add").collect();
    assert_eq!((fronts.len(), adds.len()), (2, 2), "{seen:?}");
    for (front, add) in fronts.iter().zip(&adds) {
        // One request, one trace: the remote handler's span is a child of the caller's.
        assert_eq!(front["trace_id"].len(), 32);
        assert_eq!(add["trace_id"], front["trace_id"]);
        assert_eq!(add["parent_span_id"], front["span_id"]);
        assert_ne!(add["span_id"], front["span_id"]);
        assert_eq!(add["caller_node"], client.identifier().to_string());
        // The front's own span started the trace: no parent.
        assert!(!front.contains_key("parent_span_id"), "{front:?}");
    }
    // Two requests, two traces.
    assert_ne!(fronts[0]["trace_id"], fronts[1]["trace_id"]);
    client.shutdown().await;
    server.shutdown().await;
    system.shutdown().await;
}
