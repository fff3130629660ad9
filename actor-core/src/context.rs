//! [`Context`]: what a handler can do besides touching its own state.

use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::actor_ref::RemoteTarget;
use crate::cell::{self, AnyCell, Caller, Cell, ReplyTx};
use crate::link::Watch;
use crate::mailbox::Signal;
use crate::timer::TimerHandle;
use crate::{ActorId, ActorRef, Agent, StopReason, System};

/// The agent's view of the runtime, passed to handlers and hooks that ask for it
/// (`ctx: &mut Context<Self>`).
pub struct Context<A: Agent> {
    myself: ActorRef<A>,
    system: System,
    generation: u32,
    trap_exits: bool,
    // Timers and children are rare: keep idle agents small by boxing them on first use.
    extras: Option<Box<Extras>>,
    /// Where the reply to the message being handled goes (none for a cast).
    reply: Option<ReplyTx<A>>,
    /// Who sent the message being handled, when it came from another node.
    caller: Option<Arc<Caller>>,
}

#[derive(Default)]
pub(crate) struct Extras {
    timers: Vec<TimerHandle>,
    children: Vec<Arc<dyn AnyCell>>,
    /// A stop request (rare, like timers and children: kept out of every context).
    stop: Option<StopReason>,
}

impl<A: Agent> Context<A> {
    pub(crate) fn new(myself: ActorRef<A>, system: System) -> Self {
        Context {
            myself,
            system,
            generation: 0,
            trap_exits: false,
            extras: None,
            reply: None,
            caller: None,
        }
    }

    #[inline]
    pub(crate) fn set_reply(&mut self, reply: Option<ReplyTx<A>>) {
        self.reply = reply;
    }

    #[inline]
    pub(crate) fn take_reply(&mut self) -> Option<ReplyTx<A>> {
        self.reply.take()
    }

    #[inline]
    pub(crate) fn set_caller(&mut self, caller: Option<Arc<Caller>>) {
        self.caller = caller;
    }

    /// Who sent the message being handled: the node it came from, authenticated by the
    /// secure channel it arrived on (`None` for a message sent in this process, and in
    /// hooks). Access policies build on it.
    ///
    /// ```
    /// use troupe::prelude::*;
    ///
    /// #[derive(Default)]
    /// pub struct Vault;
    ///
    /// #[agent(remote)]
    /// impl Vault {
    ///     #[handle]
    ///     fn open(&self, ctx: &mut Context<Self>) -> String {
    ///         match ctx.caller() {
    ///             Some(caller) => format!("node {} asked", caller.node()),
    ///             None => "asked from this process".to_owned(),
    ///         }
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let system = System::new();
    /// let vault = system.spawn(Vault);
    /// assert_eq!(vault.open().await.unwrap(), "asked from this process");
    /// # system.shutdown().await;
    /// # }
    /// ```
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// A new instance begins (first start or restart): nothing carries over.
    pub(crate) fn begin_instance(&mut self, generation: u32) {
        if let Some(extras) = &mut self.extras {
            extras.stop = None;
        }
        self.generation = generation;
        self.trap_exits = false;
    }

    pub(crate) fn traps_exits(&self) -> bool {
        self.trap_exits
    }

    /// When `trap` is true, every exit of a linked agent arrives as a
    /// [`Down`](crate::Down) notice (with `linked: true`) at the `#[on_down]` hook
    /// instead of stopping this agent: crashes, and (as in Erlang) normal stops too,
    /// with [`StopReason::Normal`]. Without trapping, only abnormal exits stop this agent
    /// and normal ones are not reported. Reset when the agent restarts.
    pub fn trap_exits(&mut self, trap: bool) {
        self.trap_exits = trap;
    }

    /// Links this agent's current instance with `other`: if either ends abnormally, the
    /// other stops with [`StopReason::Linked`] (unless it traps exits). Linking to an
    /// agent that already stopped delivers its exit at once.
    ///
    /// For an agent on another node, the link fires when the agent ends there (with its
    /// reason) or when the link to its node is lost (with [`StopReason::NodeLost`]); the
    /// other way, the remote agent gets this instance's exit, and `NodeLost` should this
    /// node be lost.
    pub fn link<B: Agent>(&mut self, other: &ActorRef<B>) {
        if let Some(remote) = other.remote() {
            self.watch_remote(remote.clone(), other.id(), true);
            // The other way: its node learns of this instance's end (and, should this
            // node be lost, it learns that too).
            let me = self.id();
            remote.link_from(me);
            let tell_remote = remote.clone();
            let tell: crate::link::RemoteExit =
                Arc::new(move |from, reason| tell_remote.linked_exit(from, reason));
            let _ = self.cell().watch(Watch {
                cell: Weak::<crate::cell::Cell<A>>::new(),
                generation: self.generation,
                link: true,
                remote: Some(tell),
            });
            return;
        }
        let me = self.cell().clone();
        let them = other.cell().clone();
        let me_weak: Weak<dyn AnyCell> = Arc::downgrade(&me) as Weak<dyn AnyCell>;
        let them_weak: Weak<dyn AnyCell> = Arc::downgrade(&them) as Weak<dyn AnyCell>;
        let theirs = Watch {
            cell: me_weak,
            generation: self.generation,
            link: true,
            remote: None,
        };
        match them.watch(theirs) {
            Ok(()) => {
                let mine = Watch {
                    cell: them_weak,
                    generation: them.generation(),
                    link: true,
                    remote: None,
                };
                // Our own mailbox is open: we are running.
                let _ = me.watch(mine);
            }
            Err(reason) => {
                me.deliver(Signal::Exit {
                    from: other.id(),
                    reason,
                    generation: self.generation,
                });
            }
        }
    }

    /// Monitors `other`: exactly one [`Down`](crate::Down) notice arrives at the
    /// `#[on_down]` hook when it stops for good, at once if it already has. A supervised
    /// agent being restarted is not down. The monitor belongs to this agent, not to its
    /// current instance: if this agent is restarted, the new instance gets the notice.
    ///
    /// For an agent on another node, the notice comes when the agent stops there for good
    /// (with its reason), or when the link to its node is lost (with
    /// [`StopReason::NodeLost`]).
    pub fn monitor<B: Agent>(&mut self, other: &ActorRef<B>) {
        if let Some(remote) = other.remote() {
            self.watch_remote(remote.clone(), other.id(), false);
            return;
        }
        let me = self.cell().clone();
        let watch = Watch {
            cell: Arc::downgrade(&me) as Weak<dyn AnyCell>,
            generation: self.generation,
            link: false,
            remote: None,
        };
        if let Err(reason) = other.cell().watch(watch) {
            me.deliver(Signal::Down {
                notice: crate::Down {
                    id: other.id(),
                    reason,
                    linked: false,
                },
            });
        }
    }

    pub(crate) fn cell(&self) -> &Arc<Cell<A>> {
        self.myself.cell()
    }

    /// Delivers an exit (link) or a down notice (monitor) when the link to a remote
    /// agent's node is lost. The watch holds only a weak reference to this agent.
    fn watch_remote<B: Agent>(&self, remote: Arc<Box<dyn RemoteTarget<B>>>, id: ActorId, link: bool) {
        let me = Arc::downgrade(self.cell());
        let generation = self.generation;
        tokio::spawn(async move {
            let reason = std::future::poll_fn(|cx| remote.poll_down(cx)).await;
            let Some(me) = me.upgrade() else {
                return;
            };
            me.deliver(if link {
                Signal::Exit {
                    from: id,
                    reason,
                    generation,
                }
            } else {
                Signal::Down {
                    notice: crate::Down {
                        id,
                        reason,
                        linked: false,
                    },
                }
            });
        });
    }

    /// A reference to this agent.
    pub fn myself(&self) -> &ActorRef<A> {
        &self.myself
    }

    /// This agent's id.
    pub fn id(&self) -> ActorId {
        self.myself.id()
    }

    /// The system this agent runs in.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Stops the agent normally once the current handler returns. Messages still queued
    /// are not handled; their callers get `CallError::Stopped`.
    pub fn stop(&mut self) {
        self.stop_with(StopReason::Normal);
    }

    /// Stops the agent with the given reason once the current handler returns.
    /// An abnormal reason (`StopReason::Error`) counts as a crash.
    pub fn stop_with(&mut self, reason: StopReason) {
        let extras = self.extras.get_or_insert_with(Box::default);
        if extras.stop.is_none() {
            extras.stop = Some(reason);
        }
    }

    #[inline]
    pub(crate) fn take_stop(&mut self) -> Option<StopReason> {
        self.extras.as_mut()?.stop.take()
    }

    /// Starts a child agent. Children are stopped, with [`StopReason::Shutdown`]
    /// whatever this agent's own reason, and their `#[on_stop]` hooks run, before this
    /// agent's own `#[on_stop]` runs. They are not linked to this agent: a child's crash
    /// does not stop it, and it is not told unless it monitors or links the child.
    pub fn spawn<B: Agent>(&mut self, agent: B) -> ActorRef<B> {
        let child = cell::spawn(&self.system, agent);
        let extras = self.extras.get_or_insert_with(Box::default);
        extras.children.retain(|c| !c.is_terminated());
        extras.children.push(child_cell(&child));
        child
    }

    /// Sends `msg` to this agent after `delay`. Cancel it with the returned handle; it is
    /// cancelled anyway when the agent stops.
    pub fn send_after(&mut self, delay: Duration, msg: A::Msg) -> TimerHandle {
        let target = self.myself.clone();
        self.add_timer(async move {
            tokio::time::sleep(delay).await;
            let _ = crate::request::cast_msg(&target, msg).await;
        })
    }

    /// Sends `make()` to this agent every `period`, the first time one period from now.
    /// If the agent falls behind, ticks are delayed rather than bunched up. Cancel it with
    /// the returned handle; it is cancelled anyway when the agent stops.
    pub fn interval<F>(&mut self, period: Duration, mut make: F) -> TimerHandle
    where
        F: FnMut() -> A::Msg + Send + 'static,
    {
        let target = self.myself.clone();
        self.add_timer(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if crate::request::cast_msg(&target, make()).await.is_err() {
                    return;
                }
            }
        })
    }

    fn add_timer(&mut self, task: impl Future<Output = ()> + Send + 'static) -> TimerHandle {
        let handle = TimerHandle::spawn(task);
        let extras = self.extras.get_or_insert_with(Box::default);
        extras.timers.retain(TimerHandle::is_active);
        extras.timers.push(handle.clone());
        handle
    }

    /// Cancels timers, then stops children and waits for them.
    pub(crate) async fn teardown(&mut self) {
        let Some(extras) = self.teardown_now() else {
            return;
        };
        for c in &extras.children {
            poll_fn(|cx| c.poll_terminated(cx)).await;
        }
    }

    /// True when nothing of this instance lives outside it: no active timer, no live
    /// child. Such an agent can hibernate (give back its task) when idle.
    pub(crate) fn can_hibernate(&mut self) -> bool {
        let Some(extras) = &mut self.extras else {
            return true;
        };
        extras.timers.retain(TimerHandle::is_active);
        extras.children.retain(|c| !c.is_terminated());
        if extras.timers.is_empty() && extras.children.is_empty() && extras.stop.is_none() {
            self.extras = None;
            return true;
        }
        false
    }

    /// Cancels timers and asks children to stop, without waiting (a killed agent's
    /// clean-up, which cannot wait). Returns what it tore down.
    pub(crate) fn teardown_now(&mut self) -> Option<Box<Extras>> {
        let extras = self.extras.take()?;
        for t in &extras.timers {
            t.cancel();
        }
        for c in &extras.children {
            c.clone().request_stop(StopReason::Shutdown);
        }
        Some(extras)
    }
}

fn child_cell<B: Agent>(child: &ActorRef<B>) -> Arc<dyn AnyCell> {
    let cell: Arc<Cell<B>> = child.cell().clone();
    cell
}

impl<A: Agent> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("myself", &self.myself)
            .field("stopping", &self.extras.as_ref().and_then(|e| e.stop.as_ref()))
            .finish_non_exhaustive()
    }
}
