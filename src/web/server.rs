//! The live view's HTTP side: the routes, the token check, the once-a-second ticker and
//! the server-sent event streams, all bounded, all ending when the view stops.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actor_core::System;
use actor_secure::Node;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use super::snapshot::{self, CounterFn, RateState};

/// The page: inline CSS and JavaScript, no external assets.
const PAGE: &str = include_str!("page.html");

/// What the page may load and talk to: itself only (everything it needs is inline).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// Snapshots waiting for one slow event client; past that, its snapshots are skipped.
pub(super) const EVENT_QUEUE: usize = 4;

/// Skipped snapshots in a row after which a slow event client is dropped.
pub(super) const MAX_SKIPPED: u32 = 10;

/// A cached snapshot younger than this is served again rather than rebuilt.
const FRESH: Duration = Duration::from_millis(900);

/// How often snapshots are taken and sent.
const TICK: Duration = Duration::from_secs(1);

pub(super) struct Config {
    pub(super) system: System,
    pub(super) nodes: Vec<Node>,
    pub(super) token: Option<String>,
    pub(super) aggregate_above: usize,
    pub(super) max_clients: usize,
    pub(super) counter: Option<(String, Box<CounterFn>)>,
    /// Run once, as soon as the view is told to stop, however that happens.
    pub(super) on_stop: Option<OnStop>,
}

/// What a live view undoes when it stops (the outlet it opened on a node).
pub(super) type OnStop = Box<dyn FnOnce() + Send>;

/// The stop signal every task of a live view watches.
pub(super) struct Stop {
    signal: watch::Sender<bool>,
    on_stop: Mutex<Option<OnStop>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Stop {
    /// Tells every task to stop, and runs the on-stop action (the first time only).
    pub(super) fn stop(&self) {
        self.signal.send_replace(true);
        let on_stop = self.on_stop.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(on_stop) = on_stop {
            on_stop();
        }
    }

    pub(super) fn is_stopped(&self) -> bool {
        *self.signal.borrow()
    }

    fn watcher(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }
}

/// Resolves once the live view is told to stop.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once everything stops.
    let _ = rx.wait_for(|stopped| *stopped).await;
}

struct Shared {
    system: System,
    nodes: Vec<Node>,
    token: Option<String>,
    aggregate_above: usize,
    rate: Mutex<RateState>,
    cache: tokio::sync::Mutex<Option<(Instant, Arc<str>)>>,
    clients: Arc<Semaphore>,
    latest: watch::Sender<Arc<str>>,
    stop: Arc<Stop>,
}

/// Starts the server and the ticker (which also watches for the system's shutdown);
/// returns the stop signal and the server's task.
pub(super) fn start(
    listener: tokio::net::TcpListener,
    config: Config,
    grace: Duration,
) -> (Arc<Stop>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(Stop {
        signal: watch::channel(false).0,
        on_stop: Mutex::new(config.on_stop),
    });
    let shared = Arc::new(Shared {
        system: config.system,
        nodes: config.nodes,
        token: config.token,
        aggregate_above: config.aggregate_above,
        rate: Mutex::new(RateState::new(config.counter)),
        cache: tokio::sync::Mutex::new(None),
        clients: Arc::new(Semaphore::new(config.max_clients)),
        latest: watch::channel(Arc::<str>::from("")).0,
        stop: stop.clone(),
    });

    tokio::spawn(ticker(shared.clone()));

    let app = Router::new()
        .route("/", get(page))
        .route("/api/snapshot", get(snapshot_json))
        .route("/api/events", get(events))
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared.clone());

    let mut graceful = stop.watcher();
    let mut deadline = stop.watcher();
    let task = tokio::spawn(async move {
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(async move { stopped(&mut graceful).await });
        tokio::select! {
            result = serve => {
                if let Err(error) = result {
                    tracing::warn!(%error, "the live view stopped serving");
                }
            }
            () = async {
                stopped(&mut deadline).await;
                tokio::time::sleep(grace).await;
            } => {}
        }
        // However the server ended, everything else ends with it.
        shared.stop.stop();
    });
    (stop, task)
}

/// Once a second: a sample of the charted counter, and a snapshot for the event
/// streams when any is open. Stops the live view when the system shuts down.
async fn ticker(shared: Arc<Shared>) {
    let mut rx = shared.stop.watcher();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut rx) => return,
        }
        if shared.system.is_shutting_down() {
            shared.stop.stop();
            return;
        }
        shared
            .rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sample(&shared.system, Instant::now());
        if shared.latest.receiver_count() > 0 {
            if let Some(json) = fresh_snapshot(&shared).await {
                shared.latest.send_replace(json);
            }
        }
    }
}

/// The latest snapshot as JSON, built at most once per [`FRESH`] however many ask.
async fn fresh_snapshot(shared: &Arc<Shared>) -> Option<Arc<str>> {
    let mut cache = shared.cache.lock().await;
    if let Some((at, json)) = &*cache {
        if at.elapsed() < FRESH {
            return Some(json.clone());
        }
    }
    let inner = shared.clone();
    // A big system's tree takes a while to walk: off the async threads.
    let built = tokio::task::spawn_blocking(move || {
        let mut rate = inner.rate.lock().unwrap_or_else(PoisonError::into_inner);
        let snap = snapshot::snapshot(&inner.system, &inner.nodes, inner.aggregate_above, &mut rate);
        drop(rate);
        serde_json::to_string(&snap)
    })
    .await;
    let json: Arc<str> = match built {
        Ok(Ok(json)) => json.into(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the live view could not encode a snapshot");
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "the live view's snapshot failed");
            return None;
        }
    };
    *cache = Some((Instant::now(), json.clone()));
    Some(json)
}

/// Lets a request through when no token is set, or when it presents the token.
async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(token) = &shared.token else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    let presented = [bearer, query]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()));
    if presented {
        next.run(request).await
    } else {
        let mut response = (StatusCode::UNAUTHORIZED, "a token is required\n").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// Compares without stopping at the first difference (the time taken does not say how
/// much of a guess was right).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page() -> Response {
    let mut response = axum::response::Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn snapshot_json(State(shared): State<Arc<Shared>>) -> Response {
    match fresh_snapshot(&shared).await {
        Some(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json.to_string(),
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no snapshot\n").into_response(),
    }
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let Ok(permit) = shared.clients.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live clients\n").into_response();
    };
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let mut latest = shared.latest.subscribe();
    // Send the latest snapshot at once, if there is one.
    latest.mark_changed();
    tokio::spawn(forward(latest, tx, shared.stop.watcher(), permit));
    let mut response = Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Passes each new snapshot on to one event client, until it goes away, the view
/// stops, or it falls [`MAX_SKIPPED`] snapshots behind (then its stream ends, which
/// drops it). Holds the client's permit meanwhile.
pub(super) async fn forward(
    mut latest: watch::Receiver<Arc<str>>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let mut skipped = 0;
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
            () = stopped(&mut stop) => return,
        }
        let json = latest.borrow_and_update().clone();
        if json.is_empty() {
            continue;
        }
        match tx.try_send(Ok(Event::default().event("snapshot").data(&*json))) {
            Ok(()) => skipped = 0,
            Err(mpsc::error::TrySendError::Full(_)) => {
                skipped += 1;
                if skipped >= MAX_SKIPPED {
                    tracing::debug!("a live view client fell behind and was dropped");
                    return;
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_after_a_bounded_backlog() {
        let (publish, latest) = watch::channel(Arc::<str>::from(""));
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let stop = watch::channel(false);
        let permits = Arc::new(Semaphore::new(1));
        let permit = permits.clone().try_acquire_owned().expect("a permit");
        let task = tokio::spawn(forward(latest, tx, stop.1, permit));
        for n in 0..(EVENT_QUEUE as u32 + MAX_SKIPPED + 5) {
            publish.send_replace(Arc::from(format!("{{\"seq\":{n}}}")));
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the forwarder gives up on the client")
            .expect("no panic");
        // What it queued is all there is: the client's stream then ends.
        let mut queued = 0;
        while rx.recv().await.is_some() {
            queued += 1;
        }
        assert_eq!(queued, EVENT_QUEUE);
        assert_eq!(permits.available_permits(), 1, "the client's place is free again");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"secret"));
    }
}
