//! ractor 0.16 (unbounded mailbox; `cluster` feature on, see below). Restart is manual, as
//! ractor has no restarting supervisor: a supervisor actor is linked to the worker, and on
//! `SupervisionEvent::ActorFailed` it spawns a new linked worker; callers fetch the new ref.

use crate::common::*;
use ractor::{call, Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

// remote-bench's ractor_cluster peer turns on ractor's `cluster` feature for this whole
// package, and that feature drops ractor's blanket `Message` impl: local-only messages
// declare it (the default, non-serializable impl).
impl ractor::Message for Msg {}
impl ractor::Message for SenderMsg {}
impl ractor::Message for PingerMsg {}
impl ractor::Message for OnceMsg {}
impl ractor::Message for SupMsg {}

struct Counter;

enum Msg {
    Add(u64),
    Get(RpcReplyPort<u64>),
    Poison,
}

impl Actor for Counter {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, count: &mut u64) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Add(n) => *count += n,
            Msg::Get(reply) => {
                let _ = reply.send(*count);
            }
            Msg::Poison => panic!("poison"),
        }
        Ok(())
    }
}

async fn spawn_counter() -> ActorRef<Msg> {
    Actor::spawn(None, Counter, ()).await.expect("spawn").0
}

async fn get(c: &ActorRef<Msg>) -> u64 {
    call!(c, Msg::Get).expect("call")
}

/// A sender agent holding its target counter; its (async) handler casts to or calls the
/// target and handles nothing else meanwhile.
struct Sender;

enum SenderMsg {
    /// Cast `n` increments to the target, then reply.
    Tell(u64, RpcReplyPort<u64>),
    /// Make `n` sequential calls to the target, then reply with the last answer.
    Ask(u64, RpcReplyPort<u64>),
}

impl Actor for Sender {
    type Msg = SenderMsg;
    type State = ActorRef<Msg>;
    type Arguments = ActorRef<Msg>;

    async fn pre_start(
        &self,
        _: ActorRef<SenderMsg>,
        target: ActorRef<Msg>,
    ) -> Result<ActorRef<Msg>, ActorProcessingErr> {
        Ok(target)
    }

    async fn handle(
        &self,
        _: ActorRef<SenderMsg>,
        msg: SenderMsg,
        target: &mut ActorRef<Msg>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SenderMsg::Tell(n, reply) => {
                for _ in 0..n {
                    target.cast(Msg::Add(1)).expect("cast");
                }
                let _ = reply.send(n);
            }
            SenderMsg::Ask(n, reply) => {
                let mut v = 0;
                for _ in 0..n {
                    v = std::hint::black_box(get(target).await);
                }
                let _ = reply.send(v);
            }
        }
        Ok(())
    }
}

async fn spawn_sender(target: &ActorRef<Msg>) -> ActorRef<SenderMsg> {
    Actor::spawn(None, Sender, target.clone()).await.expect("spawn").0
}

/// Ping-pong: told `Run`, the pinger casts `Ping` to its peer, which casts `Pong` back;
/// each pong starts the next round trip until n are done.
struct Pinger;
struct Ponger;

enum PingerMsg {
    Run(ActorRef<()>, u64, tokio::sync::oneshot::Sender<()>),
    Pong,
}

#[derive(Default)]
struct PingerState {
    left: u64,
    peer: Option<ActorRef<()>>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for Pinger {
    type Msg = PingerMsg;
    type State = PingerState;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PingerMsg>, _: ()) -> Result<PingerState, ActorProcessingErr> {
        Ok(PingerState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<PingerMsg>,
        msg: PingerMsg,
        st: &mut PingerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PingerMsg::Run(peer, n, done) => {
                (st.left, st.done) = (n, Some(done));
                peer.cast(()).expect("cast");
                st.peer = Some(peer);
            }
            PingerMsg::Pong => {
                st.left -= 1;
                if st.left == 0 {
                    let _ = st.done.take().expect("running").send(());
                } else {
                    st.peer.as_ref().expect("running").cast(()).expect("cast");
                }
            }
        }
        Ok(())
    }
}

/// Its message is the ping (`()`); its state is the pinger's ref.
impl Actor for Ponger {
    type Msg = ();
    type State = ActorRef<PingerMsg>;
    type Arguments = ActorRef<PingerMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        peer: ActorRef<PingerMsg>,
    ) -> Result<ActorRef<PingerMsg>, ActorProcessingErr> {
        Ok(peer)
    }

    async fn handle(
        &self,
        _: ActorRef<()>,
        _: (),
        peer: &mut ActorRef<PingerMsg>,
    ) -> Result<(), ActorProcessingErr> {
        peer.cast(PingerMsg::Pong).expect("cast");
        Ok(())
    }
}

/// `n` round trips; returns when the pinger has seen the n-th pong.
async fn pingpong(a: &ActorRef<PingerMsg>, b: &ActorRef<()>, n: u64) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.cast(PingerMsg::Run(b.clone(), n, tx)).expect("cast");
    rx.await.expect("done");
}

/// A `chain` agent: answers one call and stops itself (`myself.stop(None)`).
struct Once;

enum OnceMsg {
    Once(RpcReplyPort<u64>),
}

impl Actor for Once {
    type Msg = OnceMsg;
    type State = StopMark;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<OnceMsg>, _: ()) -> Result<StopMark, ActorProcessingErr> {
        Ok(StopMark)
    }

    async fn handle(
        &self,
        myself: ActorRef<OnceMsg>,
        msg: OnceMsg,
        _: &mut StopMark,
    ) -> Result<(), ActorProcessingErr> {
        let OnceMsg::Once(reply) = msg;
        let _ = reply.send(1);
        myself.stop(None);
        Ok(())
    }
}

/// Manual supervisor: respawns the worker when it fails.
struct Sup;

enum SupMsg {
    /// Reply with the current (generation, worker).
    Current(ChildPort),
    /// Reply with (generation, worker) once the generation exceeds the given one.
    ChildAfter(u64, ChildPort),
}

/// The supervisor's answer: (generation, worker).
type ChildPort = RpcReplyPort<(u64, ActorRef<Msg>)>;

struct SupState {
    gen: u64,
    child: ActorRef<Msg>,
    waiting: Option<(u64, ChildPort)>,
}

impl Actor for Sup {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<SupMsg>, _: ()) -> Result<SupState, ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(None, Counter, (), me.get_cell()).await?;
        Ok(SupState {
            gen: 0,
            child,
            waiting: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SupMsg>,
        msg: SupMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupMsg::Current(reply) => {
                let _ = reply.send((st.gen, st.child.clone()));
            }
            SupMsg::ChildAfter(g, reply) => {
                if st.gen > g {
                    let _ = reply.send((st.gen, st.child.clone()));
                } else {
                    st.waiting = Some((g, reply));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupMsg>,
        ev: SupervisionEvent,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(..) = ev {
            let (child, _) = Actor::spawn_linked(None, Counter, (), me.get_cell()).await?;
            st.child = child;
            st.gen += 1;
            if let Some((g, reply)) = st.waiting.take() {
                if st.gen > g {
                    let _ = reply.send((st.gen, st.child.clone()));
                } else {
                    st.waiting = Some((g, reply));
                }
            }
        }
        Ok(())
    }
}

pub fn run(workload: &str, p: Params) -> Outcome {
    match workload {
        "tell-agents" => on_runtime(move || async move {
            let warm = spawn_counter().await;
            let ws = spawn_sender(&warm).await;
            call!(ws, SenderMsg::Tell, p.tell / 10).expect("call");
            assert_eq!(get(&warm).await, p.tell / 10);
            let c = spawn_counter().await;
            let s = spawn_sender(&c).await;
            let t = now();
            call!(s, SenderMsg::Tell, p.tell).expect("call");
            let total = get(&c).await;
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_agents_mps", mps(p.tell, d))])
        }),
        "fanin-agents" => on_runtime(move || async move {
            let c = spawn_counter().await;
            let mut senders = Vec::new();
            for _ in 0..p.fanin_senders {
                senders.push(spawn_sender(&c).await);
            }
            let t = now();
            futures::future::join_all(
                senders
                    .iter()
                    .map(|s| async move { call!(s, SenderMsg::Tell, p.fanin_per).expect("call") }),
            )
            .await;
            let total = get(&c).await;
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_agents_mps", mps(n, d))])
        }),
        "ask-agents" => on_runtime(move || async move {
            let s = spawn_sender(&spawn_counter().await).await;
            call!(s, SenderMsg::Ask, p.ask / 10).expect("call");
            let t = now();
            call!(s, SenderMsg::Ask, p.ask).expect("call");
            Outcome::Metrics(vec![("ask_agents_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "pingpong" => on_runtime(move || async move {
            let (a, _) = Actor::spawn(None, Pinger, ()).await.expect("spawn");
            let (b, _) = Actor::spawn(None, Ponger, a.clone()).await.expect("spawn");
            pingpong(&a, &b, p.pingpong / 10).await;
            let t = now();
            pingpong(&a, &b, p.pingpong).await;
            Outcome::Metrics(vec![("pingpong_ns", ns_per(p.pingpong, t.elapsed()))])
        }),
        "tell" => on_runtime(move || async move {
            let warm = spawn_counter().await;
            for _ in 0..p.tell / 10 {
                warm.cast(Msg::Add(1)).expect("cast");
            }
            assert_eq!(get(&warm).await, p.tell / 10);
            let c = spawn_counter().await;
            let t = now();
            for _ in 0..p.tell {
                c.cast(Msg::Add(1)).expect("cast");
            }
            let total = get(&c).await;
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_runtime(move || async move {
            let c = spawn_counter().await;
            for _ in 0..p.ask / 10 {
                std::hint::black_box(get(&c).await);
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(get(&c).await);
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_runtime(move || async move {
            let c = spawn_counter().await;
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.cast(Msg::Add(1)).expect("cast");
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = get(&c).await;
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_mps", mps(n, d))])
        }),
        "spawn" => on_runtime(move || async move {
            let mut refs = Vec::with_capacity(p.spawn as usize);
            settle().await;
            let rss_before = vm_rss_bytes();
            let t = now();
            for _ in 0..p.spawn {
                refs.push(spawn_counter().await);
            }
            let spawn = t.elapsed();
            settle().await;
            let rss_after = vm_rss_bytes();
            let t = now();
            for r in &refs {
                std::hint::black_box(get(r).await);
            }
            let out = spawn_outcome(p.spawn, spawn, t.elapsed(), rss_before, rss_after).await;
            std::mem::forget(refs);
            out
        }),
        "chain" => on_runtime(move || async move {
            let rss_start = chain_start().await;
            let t = now();
            for _ in 0..p.chain {
                let (a, _) = Actor::spawn(None, Once, ()).await.expect("spawn");
                std::hint::black_box(call!(a, OnceMsg::Once).expect("call"));
            }
            chain_outcome(p.chain, t, rss_start).await
        }),
        "restart" => on_runtime(move || async move {
            quiet_panics();
            let (sup, _) = Actor::spawn(None, Sup, ()).await.expect("spawn sup");
            let (mut gen, mut w) = call!(sup, SupMsg::Current).expect("current");
            let mut total = std::time::Duration::ZERO;
            for i in 0..RESTART_WARMUP + p.restart {
                let t = now();
                w.cast(Msg::Poison).expect("cast poison");
                (gen, w) = call!(sup, SupMsg::ChildAfter, gen).expect("child after");
                assert_eq!(get(&w).await, 0);
                if i >= RESTART_WARMUP {
                    total += t.elapsed();
                }
            }
            restart_outcome(p.restart, total)
        }),
        _ => unreachable!(),
    }
}
