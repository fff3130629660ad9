//! `TROUPE_BENCH_SUBSCRIBER`: the tracing subscriber a benchmark process runs under
//! (issue 13's overhead targets).
//!
//! - unset: no subscriber;
//! - `dynamic`: a per-layer filter function that keeps INFO and above, asked at every
//!   span (the worst case for a span that is filtered out);
//! - anything else: a subscriber at INFO (troupe's DEBUG spans filtered out, a decision
//!   tracing makes once per call site).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// Installs the subscriber `TROUPE_BENCH_SUBSCRIBER` names, if any.
pub fn install_from_env() {
    match std::env::var("TROUPE_BENCH_SUBSCRIBER").ok().as_deref() {
        None => {}
        Some("dynamic") => {
            let filter = tracing_subscriber::filter::filter_fn(|m| *m.level() <= tracing::Level::INFO);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("one subscriber");
        }
        Some(_) => tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::stderr)
            .init(),
    }
}
