//! [`TrustPolicy`]: which authenticated peers a channel accepts.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::identifier::Identifier;

/// Decides whether an authenticated peer may use a channel. It runs after the peer proved
/// its identity and before any application byte is delivered.
///
/// ```
/// use actor_secure::{Identity, TrustPolicy};
///
/// let bob = Identity::generate().identifier();
/// let eve = Identity::generate().identifier();
/// assert!(TrustPolicy::any().allows(&eve));
/// assert!(TrustPolicy::allow([bob]).allows(&bob));
/// assert!(!TrustPolicy::allow([bob]).allows(&eve));
/// let only_bob = TrustPolicy::predicate(move |id| *id == bob);
/// assert!(!only_bob.allows(&eve));
/// ```
#[derive(Clone)]
pub struct TrustPolicy(Rule);

#[derive(Clone)]
enum Rule {
    Any,
    Allow(Arc<HashSet<Identifier>>),
    Predicate(Arc<dyn Fn(&Identifier) -> bool + Send + Sync>),
}

impl TrustPolicy {
    /// Accepts any peer that proves an identity. Authentication still happens; use this
    /// when the identity is checked later (for example by an access policy).
    pub fn any() -> TrustPolicy {
        TrustPolicy(Rule::Any)
    }

    /// Accepts only the listed identifiers.
    pub fn allow(ids: impl IntoIterator<Item = Identifier>) -> TrustPolicy {
        TrustPolicy(Rule::Allow(Arc::new(ids.into_iter().collect())))
    }

    /// Accepts the peers for which `f` returns `true`.
    pub fn predicate(f: impl Fn(&Identifier) -> bool + Send + Sync + 'static) -> TrustPolicy {
        TrustPolicy(Rule::Predicate(Arc::new(f)))
    }

    /// Whether the policy accepts `peer`.
    pub fn allows(&self, peer: &Identifier) -> bool {
        match &self.0 {
            Rule::Any => true,
            Rule::Allow(set) => set.contains(peer),
            Rule::Predicate(f) => f(peer),
        }
    }
}

impl fmt::Debug for TrustPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rule::Any => f.write_str("TrustPolicy::Any"),
            Rule::Allow(set) => f.debug_tuple("TrustPolicy::Allow").field(set).finish(),
            Rule::Predicate(_) => f.write_str("TrustPolicy::Predicate(..)"),
        }
    }
}
