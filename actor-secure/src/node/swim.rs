//! Cluster membership: SWIM with suspicion (the `foca` crate), sans-IO.
//!
//! This module knows nothing of sockets or clocks: [`Swim`] takes what arrives
//! ([`Swim::handle_data`]) and timers that fire ([`Swim::handle_timer`]) and answers with
//! [`Effect`]s: bytes to send to a member, timers to schedule, members that came up or
//! went down. The node runs it over its secure links with tokio's clock; the simulator
//! (`sim.rs`, tests only) runs it over a simulated network on virtual time.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use foca::{
    AccumulatingRuntime, Codec, Config, Foca, Header, Member, NoCustomBroadcast, OwnedNotification,
    PeriodicParams, PostcardCodec, Timer,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// A node as the membership layer knows it: its identifier (the key of its identity),
/// the address it listens on, and its incarnation (a node that restarts with the same
/// identity is a new incarnation, which wins over the old one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct MemberId {
    pub(crate) node: [u8; 32],
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u64,
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}@{}#{}",
            self.node[0], self.node[1], self.node[2], self.node[3], self.addr, self.incarnation
        )
    }
}

impl foca::Identity for MemberId {
    /// Members are told apart by their identifier: one place in the cluster per identity.
    type Addr = [u8; 32];

    fn renew(&self) -> Option<Self> {
        Some(MemberId {
            incarnation: self.incarnation.wrapping_add(1),
            ..*self
        })
    }

    fn addr(&self) -> [u8; 32] {
        self.node
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// How the cluster notices a dead node. The defaults detect a silent node in about 3.5 s
/// (1 s probes, 1.5 s of suspicion); a node whose process dies is noticed sooner, when its
/// links close.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    pub(crate) probe_period: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) suspect_timeout: Duration,
    pub(crate) gossip_interval: Duration,
    pub(crate) announce_interval: Duration,
    pub(crate) max_members: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_period: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(300),
            suspect_timeout: Duration::from_millis(1500),
            gossip_interval: Duration::from_millis(200),
            announce_interval: Duration::from_secs(10),
            max_members: 4096,
        }
    }
}

impl MembershipConfig {
    /// How often each node probes one other member (default 1 s).
    pub fn probe_period(mut self, d: Duration) -> Self {
        self.probe_period = d.max(Duration::from_millis(10));
        self
    }

    /// How long a probe waits for a direct answer before asking others to try (default
    /// 300 ms); kept below the probe period.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// How long a member that missed a probe is suspected before it is declared down
    /// (default 1.5 s): the time it has to refute the suspicion.
    pub fn suspect_timeout(mut self, d: Duration) -> Self {
        self.suspect_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// How often news about members is sent to a few others besides probes (default
    /// 200 ms).
    pub fn gossip_interval(mut self, d: Duration) -> Self {
        self.gossip_interval = d.max(Duration::from_millis(10));
        self
    }

    /// How many members a node keeps track of (default 4096); news of more is refused.
    pub fn max_members(mut self, n: usize) -> Self {
        self.max_members = n.max(2);
        self
    }

    pub(crate) fn foca(&self) -> Config {
        let mut config = Config::simple();
        config.notify_down_members = true;
        config.probe_period = self.probe_period;
        // foca requires the round trip to be strictly shorter than the period.
        config.probe_rtt = self.probe_timeout.min(self.probe_period / 2);
        config.suspect_to_down_after = self.suspect_timeout;
        // News of a change is passed on 30 times: over a TCP link, packets are cheap, and
        // a joiner is then known everywhere in about 2 s even among 1,000 nodes.
        config.max_transmissions = std::num::NonZeroU8::new(30).unwrap_or(std::num::NonZeroU8::MIN);
        config.max_packet_size = NonZeroUsize::new(MAX_PACKET).unwrap_or(NonZeroUsize::MIN);
        config.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_interval,
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        config.periodic_announce = Some(PeriodicParams {
            frequency: self.announce_interval,
            num_members: NonZeroUsize::MIN,
        });
        config.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: self.announce_interval * 3,
            num_members: NonZeroUsize::MIN,
        });
        config
    }
}

/// The largest membership packet made or taken.
pub(crate) const MAX_PACKET: usize = 32 * 1024;

/// Why a membership packet was refused.
#[derive(Debug)]
pub(crate) enum CodecError {
    Malformed,
    TooManyMembers,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Malformed => f.write_str("malformed membership packet"),
            CodecError::TooManyMembers => f.write_str("news of more members than the limit"),
        }
    }
}

impl std::error::Error for CodecError {}

/// foca's postcard encoding, with a bound on how many distinct members a peer can make
/// this node remember.
pub(crate) struct BoundedCodec {
    known: HashSet<[u8; 32]>,
    max: usize,
}

impl Codec<MemberId> for BoundedCodec {
    type Error = CodecError;

    fn encode_header(&mut self, header: &Header<MemberId>, buf: impl BufMut) -> Result<(), CodecError> {
        PostcardCodec
            .encode_header(header, buf)
            .map_err(|_| CodecError::Malformed)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<MemberId>, CodecError> {
        PostcardCodec
            .decode_header(buf)
            .map_err(|_| CodecError::Malformed)
    }

    fn encode_member(&mut self, member: &Member<MemberId>, buf: impl BufMut) -> Result<(), CodecError> {
        PostcardCodec
            .encode_member(member, buf)
            .map_err(|_| CodecError::Malformed)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<MemberId>, CodecError> {
        let member: Member<MemberId> = PostcardCodec
            .decode_member(buf)
            .map_err(|_| CodecError::Malformed)?;
        let node = member.id().node;
        if !self.known.contains(&node) {
            if self.known.len() >= self.max {
                return Err(CodecError::TooManyMembers);
            }
            self.known.insert(node);
        }
        Ok(member)
    }
}

/// The sender a membership packet claims, if it decodes (checked against the link it
/// came on before the packet is used).
pub(crate) fn claimed_sender(packet: &[u8]) -> Option<MemberId> {
    let header: Header<MemberId> = PostcardCodec.decode_header(packet).ok()?;
    Some(header.src)
}

/// What the membership layer asks of its runtime.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send these bytes to that member.
    Send(MemberId, Bytes),
    /// Call [`Swim::handle_timer`] with this timer after this long.
    Schedule(Duration, Timer<MemberId>),
    /// A member joined (or came back as a new incarnation).
    Up(MemberId),
    /// A member is declared down.
    Down(MemberId),
    /// This node was declared down by others and rejoined as this new incarnation.
    Rejoined(MemberId),
}

/// One node's membership state machine.
pub(crate) struct Swim {
    foca: Foca<MemberId, BoundedCodec, StdRng, NoCustomBroadcast>,
    runtime: AccumulatingRuntime<MemberId>,
}

impl fmt::Debug for Swim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swim")
            .field("identity", self.foca.identity())
            .field("members", &self.foca.num_members())
            .finish()
    }
}

impl Swim {
    /// A node alone, as `me`; `seed` seeds its choice of whom to probe.
    pub(crate) fn new(me: MemberId, config: &MembershipConfig, seed: [u8; 32]) -> Swim {
        let codec = BoundedCodec {
            known: HashSet::new(),
            max: config.max_members,
        };
        Swim {
            foca: Foca::new(me, config.foca(), StdRng::from_seed(seed), codec),
            runtime: AccumulatingRuntime::new(),
        }
    }

    /// Asks `to` to let this node in (its incarnation may be unknown: 0 will do).
    pub(crate) fn announce(&mut self, to: MemberId) -> Vec<Effect> {
        let _ = self.foca.announce(to, &mut self.runtime);
        self.effects()
    }

    /// Takes a packet that arrived (from a link whose peer was checked to be the
    /// sender); `Err` says why it was refused.
    pub(crate) fn handle_data(&mut self, packet: &[u8]) -> (Vec<Effect>, Result<(), String>) {
        let result = self
            .foca
            .handle_data(packet, &mut self.runtime)
            .map_err(|e| e.to_string());
        (self.effects(), result)
    }

    /// A timer scheduled earlier fired.
    pub(crate) fn handle_timer(&mut self, timer: Timer<MemberId>) -> Vec<Effect> {
        // foca 2.0 declares a suspect down when its timer fires even if the suspect has
        // refuted the suspicion since (and tells it to rejoin): only a member still
        // suspected at that incarnation goes down.
        if let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = &timer
        {
            let still_suspected = self.foca.iter_membership_state().any(|m| {
                m.id() == member_id && m.incarnation() == *incarnation && m.state() == foca::State::Suspect
            });
            if !still_suspected {
                return Vec::new();
            }
        }
        let _ = self.foca.handle_timer(timer, &mut self.runtime);
        self.effects()
    }

    /// Leaves the cluster: tells a few members, who spread the news.
    pub(crate) fn leave(mut self) -> Vec<Effect> {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.effects()
    }

    /// The members this node sees as up (itself not included).
    pub(crate) fn members(&self) -> impl Iterator<Item = &MemberId> {
        self.foca.iter_members().map(Member::id)
    }

    /// How many members this node sees as up (itself not included).
    pub(crate) fn num_members(&self) -> usize {
        self.foca.num_members()
    }

    fn effects(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(m) => out.push(Effect::Up(m)),
                OwnedNotification::MemberDown(m) => out.push(Effect::Down(m)),
                OwnedNotification::Rename(old, new) => {
                    out.push(Effect::Down(old));
                    out.push(Effect::Up(new));
                }
                OwnedNotification::Rejoin(me) => out.push(Effect::Rejoined(me)),
                _ => {}
            }
        }
        while let Some((to, data)) = self.runtime.to_send() {
            out.push(Effect::Send(to, data));
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            out.push(Effect::Schedule(after, timer));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MemberId {
        MemberId {
            node: [n; 32],
            addr: SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(n))),
            incarnation: 1,
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_packets_are_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)
        ) {
            let mut swim = Swim::new(id(1), &MembershipConfig::default(), [0; 32]);
            let _ = claimed_sender(&bytes);
            let _ = swim.handle_data(&bytes);
        }
    }

    #[test]
    fn a_peer_cannot_make_a_node_remember_more_members_than_its_limit() {
        let mut codec = BoundedCodec {
            known: HashSet::new(),
            max: 3,
        };
        let mut buf = Vec::new();
        for n in 0..4 {
            codec.encode_member(&Member::alive(id(n)), &mut buf).unwrap();
        }
        let mut rest = &buf[..];
        for _ in 0..3 {
            codec.decode_member(&mut rest).unwrap();
        }
        assert!(matches!(
            codec.decode_member(&mut rest),
            Err(CodecError::TooManyMembers)
        ));
        // Members already known still decode.
        let mut again = Vec::new();
        codec.encode_member(&Member::alive(id(0)), &mut again).unwrap();
        codec.decode_member(&again[..]).unwrap();
    }
}

#[cfg(test)]
mod sim;
