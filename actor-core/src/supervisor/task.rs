//! The supervisor's own task: group restarts, backoff, giving up, dynamic children and
//! shutdown.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::child::{self, ChildOps};
use super::events::EventKind;
use super::{
    ChildEntry, ChildSpec, Phase, Status, Strategy, SupMsg, SupShared, SupState, Supervisor, SupervisorError,
};
use crate::{StopReason, System};

/// Builds the shared state, starts the children in order and spawns the task.
pub(super) fn start(
    sup: Supervisor,
    system: &System,
    name: String,
    parent: Option<(Weak<SupShared>, u64)>,
) -> Arc<SupShared> {
    let (tx, rx) = mpsc::unbounded_channel();
    let path = match parent.as_ref().and_then(|(p, _)| p.upgrade()) {
        Some(p) => format!("{}/{name}", p.path),
        None => name.clone(),
    };
    let shared = Arc::new(SupShared {
        path,
        parent: parent.as_ref().map(|(p, _)| p.clone()),
        outlet: Default::default(),
        name,
        tx,
        state: Mutex::new(SupState {
            strategy: sup.strategy,
            max_restarts: sup.max_restarts,
            period: sup.period,
            backoff: sup.backoff,
            children: Default::default(),
            restarts: VecDeque::new(),
            status: Status::Running,
            total_restarts: 0,
            next_key: 0,
        }),
        system: Arc::downgrade(system.inner()),
    });
    let mut task = SupTask {
        shared: shared.clone(),
        rx,
        deferred: VecDeque::new(),
        system: system.clone(),
        parent,
    };
    for spec in sup.children {
        if let Err(e) = task.add_child(spec) {
            tracing::error!(supervisor = %shared.name, error = %e, "child not started");
        }
    }
    system.inner().start(task.run());
    shared
}

struct SupTask {
    shared: Arc<SupShared>,
    rx: mpsc::UnboundedReceiver<SupMsg>,
    /// Messages that arrived while the task waited for one particular child.
    deferred: VecDeque<SupMsg>,
    system: System,
    parent: Option<(Weak<SupShared>, u64)>,
}

impl SupTask {
    async fn run(mut self) {
        while let Some(msg) = self.next().await {
            let flow = match msg {
                SupMsg::Exited { key, reason } => self.on_exit(key, reason).await,
                SupMsg::StartChild { spec, reply } => {
                    let _ = reply.send(self.add_child(spec));
                    ControlFlow::Continue(())
                }
                SupMsg::TerminateChild { name, reply } => {
                    let _ = reply.send(self.terminate_child(&name).await);
                    ControlFlow::Continue(())
                }
                SupMsg::Shutdown { reply } => {
                    self.set_status(Status::Busy);
                    self.stop_children(None).await;
                    self.set_status(Status::Stopped);
                    self.finalize_all(&StopReason::Shutdown).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    ControlFlow::Break(())
                }
                SupMsg::Suspend => {
                    self.set_status(Status::Busy);
                    self.stop_children(None).await;
                    self.set_status(Status::Suspended);
                    self.report_to_parent(StopReason::Shutdown);
                    ControlFlow::Continue(())
                }
                SupMsg::Resume => {
                    {
                        let mut st = self.shared.state.lock();
                        st.status = Status::Running;
                        st.restarts.clear();
                    }
                    self.start_waiting(None);
                    ControlFlow::Continue(())
                }
            };
            if flow.is_break() {
                return;
            }
        }
    }

    /// The next message: deferred ones first; meanwhile, start children whose backoff
    /// has elapsed.
    async fn next(&mut self) -> Option<SupMsg> {
        if let Some(m) = self.deferred.pop_front() {
            return Some(m);
        }
        loop {
            let due = self.earliest_due();
            match due {
                None => return self.rx.recv().await,
                Some(at) => {
                    tokio::select! {
                        m = self.rx.recv() => return m,
                        _ = tokio::time::sleep_until(at) => self.start_waiting(Some(Instant::now())),
                    }
                }
            }
        }
    }

    fn earliest_due(&self) -> Option<Instant> {
        let st = self.shared.state.lock();
        if st.status != Status::Running {
            return None;
        }
        st.children
            .iter()
            .filter_map(|c| match c.phase {
                Phase::Waiting(Some(at)) => Some(at),
                _ => None,
            })
            .min()
    }

    fn set_status(&self, status: Status) {
        self.shared.state.lock().status = status;
    }

    /// Builds a child, records it, then starts it (so that an immediate crash finds its
    /// record).
    fn add_child(&mut self, spec: ChildSpec) -> Result<(), SupervisorError> {
        let key = {
            let mut st = self.shared.state.lock();
            if st.status == Status::Stopped {
                return Err(SupervisorError::Stopped);
            }
            if st.children.named(&spec.name).is_some() {
                return Err(SupervisorError::NameTaken(spec.name));
            }
            st.next_key += 1;
            st.next_key
        };
        let ops = child::build(spec.kind, &spec.name, &self.system, &self.shared, key);
        self.shared.state.lock().children.push(ChildEntry {
            key,
            name: spec.name,
            restart: spec.restart,
            shutdown: spec.shutdown,
            ops,
            phase: Phase::Waiting(None),
            expect_exit: false,
            started: false,
            attempts: 0,
            restarts: 0,
            last_restart: None,
        });
        self.start_child(key);
        Ok(())
    }

    /// Starts one waiting child; a failed start (the factory panicked) counts as an exit.
    fn start_child(&mut self, key: u64) {
        let (result, name, id, again) = {
            let mut st = self.shared.state.lock();
            let Some(c) = st.children.get_mut(key) else {
                return;
            };
            if c.phase == Phase::Running {
                return;
            }
            c.phase = Phase::Running;
            let again = std::mem::replace(&mut c.started, true);
            if again {
                c.restarts += 1;
            }
            (c.ops.start(), c.name.clone(), c.ops.id(), again)
        };
        match result {
            Ok(()) if again => self.shared.emit(&name, id, EventKind::Restarted),
            Ok(()) => self.shared.emit(&name, id, EventKind::Started),
            Err(reason) => {
                self.shared.emit(&name, None, EventKind::Crashed(reason.clone()));
                self.deferred.push_back(SupMsg::Exited { key, reason });
            }
        }
    }

    /// Starts, in start order, every waiting child (whose deadline has passed, if `now`).
    fn start_waiting(&mut self, now: Option<Instant>) {
        let keys: Vec<u64> = {
            let st = self.shared.state.lock();
            st.children
                .iter()
                .filter(|c| match (c.phase, now) {
                    (Phase::Waiting(Some(at)), Some(now)) => at <= now,
                    (Phase::Waiting(_), None) => true,
                    _ => false,
                })
                .map(|c| c.key)
                .collect()
        };
        for key in keys {
            self.start_child(key);
        }
    }

    async fn on_exit(&mut self, key: u64, reason: StopReason) -> ControlFlow<()> {
        enum Then {
            Nothing,
            Finalize(Box<dyn ChildOps>),
            GiveUp,
            StartNow,
            Group(Vec<u64>, Duration),
        }
        let shutting_down = self.shared.system_shutting_down();
        let then = {
            let mut st = self.shared.state.lock();
            let st = &mut *st;
            let Some(c) = st.children.get_mut(key) else {
                return ControlFlow::Continue(());
            };
            if c.phase == Phase::Running && c.ops.id().is_some() {
                // A stale report: the child was restarted since (by a group restart).
                return ControlFlow::Continue(());
            }
            c.phase = Phase::Waiting(None);
            if c.expect_exit || st.status == Status::Suspended {
                Then::Nothing
            } else if shutting_down || st.status == Status::Stopped || !c.restart.applies(&reason) {
                match st.children.remove(key) {
                    Some(c) => Then::Finalize(c.ops),
                    None => Then::Nothing,
                }
            } else if !st.record_restart() {
                Then::GiveUp
            } else {
                let Some(c) = st.children.get_mut(key) else {
                    return ControlFlow::Continue(());
                };
                let now = Instant::now();
                if c.last_restart.is_some_and(|t| now.duration_since(t) > st.period) {
                    c.attempts = 0;
                }
                c.attempts += 1;
                c.last_restart = Some(now);
                let delay = st
                    .backoff
                    .as_ref()
                    .map_or(Duration::ZERO, |b| b.delay(c.attempts));
                match st.strategy {
                    Strategy::OneForOne if delay.is_zero() => Then::StartNow,
                    Strategy::OneForOne => {
                        c.phase = Phase::Waiting(Some(now + delay));
                        Then::Nothing
                    }
                    Strategy::OneForAll => Then::Group(st.children.iter().map(|c| c.key).collect(), delay),
                    Strategy::RestForOne => {
                        Then::Group(st.children.starting_at(key).map(|c| c.key).collect(), delay)
                    }
                }
            }
        };
        match then {
            Then::Nothing => {}
            Then::Finalize(mut ops) => {
                if let Some(done) = ops.finalize(&reason) {
                    let _ = done.await;
                }
            }
            Then::StartNow => self.start_child(key),
            Then::Group(keys, delay) => {
                self.set_status(Status::Busy);
                self.stop_children(Some(&keys)).await;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                self.set_status(Status::Running);
                for k in keys {
                    self.start_child(k);
                }
            }
            Then::GiveUp => return self.give_up().await,
        }
        ControlFlow::Continue(())
    }

    /// Restart intensity exceeded: stop every child (keeping mailboxes) and let the
    /// parent decide; at the root, stop for good.
    async fn give_up(&mut self) -> ControlFlow<()> {
        let reason = StopReason::Error("restart intensity exceeded".to_owned());
        self.shared.emit("", None, EventKind::GaveUp);
        self.set_status(Status::Busy);
        self.stop_children(None).await;
        if self.parent.is_some() {
            tracing::warn!(supervisor = %self.shared.name, "restart intensity exceeded; escalating");
            self.set_status(Status::Suspended);
            self.report_to_parent(reason);
            ControlFlow::Continue(())
        } else {
            tracing::error!(supervisor = %self.shared.name, "restart intensity exceeded at the root; stopping the tree");
            // Stopped first: whoever sees a child gone also sees the supervisor gone.
            self.set_status(Status::Stopped);
            self.finalize_all(&reason).await;
            ControlFlow::Break(())
        }
    }

    fn report_to_parent(&self, reason: StopReason) {
        if let Some((parent, key)) = &self.parent {
            if let Some(parent) = parent.upgrade() {
                parent.report_exit(*key, reason);
            }
        }
    }

    /// Stops the running children among `keys` (all when `None`), in reverse start
    /// order, waiting for each (killing it after its shutdown timeout).
    async fn stop_children(&mut self, keys: Option<&[u64]>) {
        let order: Vec<u64> = {
            let st = self.shared.state.lock();
            match keys {
                None => st.children.iter().rev().map(|c| c.key).collect(),
                Some(keys) => {
                    let mut keys: Vec<u64> = keys
                        .iter()
                        .copied()
                        .filter(|k| st.children.get(*k).is_some())
                        .collect();
                    keys.sort_unstable_by(|a, b| b.cmp(a));
                    keys.dedup();
                    keys
                }
            }
        };
        for key in order {
            let timeout = {
                let mut st = self.shared.state.lock();
                let Some(c) = st.children.get_mut(key) else {
                    continue;
                };
                if c.phase != Phase::Running {
                    c.phase = Phase::Waiting(None);
                    continue;
                }
                c.expect_exit = true;
                c.ops.request_stop();
                c.shutdown
            };
            self.wait_exit(key, timeout).await;
            let mut st = self.shared.state.lock();
            if let Some(c) = st.children.get_mut(key) {
                c.expect_exit = false;
                c.phase = Phase::Waiting(None);
            }
        }
    }

    /// Waits for `key`'s `Exited`, deferring other messages; kills it after `timeout`
    /// and then waits for the killed instance's report (sent when its task is dropped).
    async fn wait_exit(&mut self, key: u64, timeout: Duration) {
        let mut deadline = Instant::now().checked_add(timeout);
        loop {
            let msg = match deadline {
                Some(at) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        deadline = None;
                        let killed = {
                            let mut st = self.shared.state.lock();
                            st.children.get_mut(key).is_some_and(|c| c.ops.kill())
                        };
                        if !killed {
                            return;
                        }
                        tracing::warn!(supervisor = %self.shared.name, child = key, "child did not stop in time; killed");
                        continue;
                    }
                },
                None => self.rx.recv().await,
            };
            match msg {
                Some(SupMsg::Exited { key: k, .. }) if k == key => return,
                Some(other) => self.deferred.push_back(other),
                None => return,
            }
        }
    }

    /// Stops a child for good and removes it.
    async fn terminate_child(&mut self, name: &str) -> Result<(), SupervisorError> {
        let key = {
            let st = self.shared.state.lock();
            st.children
                .named(name)
                .map(|c| c.key)
                .ok_or_else(|| SupervisorError::NoSuchChild(name.to_owned()))?
        };
        self.stop_children(Some(&[key])).await;
        let ops = {
            let mut st = self.shared.state.lock();
            st.children.remove(key).map(|c| c.ops)
        };
        if let Some(mut ops) = ops {
            if let Some(done) = ops.finalize(&StopReason::Shutdown) {
                let _ = done.await;
            }
        }
        Ok(())
    }

    /// Closes every child's mailbox for good, in reverse start order.
    async fn finalize_all(&mut self, reason: &StopReason) {
        let children: Vec<ChildEntry> = {
            let mut st = self.shared.state.lock();
            st.children.take_all()
        };
        for mut c in children.into_iter().rev() {
            if let Some(done) = c.ops.finalize(reason) {
                let _ = done.await;
            }
        }
    }
}
