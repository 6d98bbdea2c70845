//! What the client concluded about one address.

/// Whether an address is reachable from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reachability {
    /// Enough servers dialed it back.
    Reachable,
    /// Enough servers failed to dial it.
    Unreachable,
    /// Not known (yet): see the [`Reason`].
    Unknown,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reachability::Reachable => "reachable",
            Reachability::Unreachable => "unreachable",
            Reachability::Unknown => "unknown",
        })
    }
}

/// Why a [`Verdict`] is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The servers agree by the confidence margin.
    Confirmed,
    /// Not a public address (loopback, private, link-local ...): never probed and
    /// never confirmed.
    NotPublic,
    /// Probes are under way; the servers do not agree by the margin yet.
    Probing,
    /// No server is left to ask: none connected speaks AutoNAT v2, or each one has
    /// answered or is backed off after an error.
    NoServers,
}

/// The client's verdict on one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// The verdict.
    pub reachability: Reachability,
    /// Why.
    pub reason: Reason,
    /// Servers (in the recent window) that dialed the address back.
    pub successes: usize,
    /// Servers (in the recent window) that could not dial it.
    pub failures: usize,
    /// The margin of agreeing servers a verdict needs.
    pub needed: usize,
}

impl Verdict {
    /// An address nothing is known about yet.
    pub(crate) fn unknown(reason: Reason, needed: usize) -> Self {
        Verdict {
            reachability: Reachability::Unknown,
            reason,
            successes: 0,
            failures: 0,
            needed,
        }
    }

    /// Whether the verdict is final until a re-probe changes it.
    pub fn is_confirmed(&self) -> bool {
        self.reason == Reason::Confirmed
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, fl, n) = (self.successes, self.failures, self.needed);
        match self.reason {
            Reason::Confirmed => write!(
                f,
                "{} ({s} servers dialed it back, {fl} could not)",
                self.reachability
            ),
            Reason::NotPublic => write!(f, "{}: not a public address", self.reachability),
            Reason::Probing => write!(
                f,
                "{}: probing ({s} dialed back, {fl} could not; a margin of {n} needed)",
                self.reachability
            ),
            Reason::NoServers => write!(
                f,
                "{}: no more servers to ask ({s} dialed back, {fl} could not; a margin of {n} needed)",
                self.reachability
            ),
        }
    }
}
