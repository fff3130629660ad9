//! What `Identity::load_or_create` logs. A test binary of its own: `tracing` caches a
//! callsite's interest when it is first reached, and with a single scoped subscriber a
//! test on another thread could reach it first and cache "never".

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use actor_secure::Identity;

/// Records the level and message of every event, to check what is logged.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Events {
    fn warnings(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|(level, _)| *level == tracing::Level::WARN)
            .map(|(_, message)| message.clone())
            .collect()
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Events {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        // Asked again at every event: other tests' threads log without this subscriber.
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn creating_a_new_identity_is_a_warning_and_loading_one_is_not() {
    let dir = std::env::temp_dir().join(format!("troupe-idfile-log-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join("node.key");
    let events = Events::default();
    let id = tracing::subscriber::with_default(events.clone(), || Identity::load_or_create(&path).unwrap());
    let warnings = events.warnings();
    assert_eq!(
        warnings,
        [format!(
            "created new identity {} at {}; use Identity::load where it must already exist",
            id.identifier(),
            path.display()
        )]
    );

    let events = Events::default();
    tracing::subscriber::with_default(events.clone(), || {
        Identity::load_or_create(&path).unwrap();
        Identity::load(&path).unwrap();
    });
    assert!(events.warnings().is_empty());
    fs::remove_dir_all(&dir).unwrap();
}
