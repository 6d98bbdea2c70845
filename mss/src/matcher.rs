//! Which proposed protocol ids a listener accepts.

use std::fmt;

/// Decides which proposed protocol ids a listener accepts.
pub trait ProtocolMatcher: Send + Sync {
    /// Whether we accept the proposed id.
    fn matches(&self, proposed: &str) -> bool;
    /// The ids we list in answer to `ls`.
    fn supported(&self) -> Vec<String>;
}

type MatchFn = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A ready-made matcher: exact ids plus match functions.
///
/// ```
/// use weft_mss::{ProtocolMatcher, Protocols};
///
/// let protocols = Protocols::new()
///     .with_exact("/noise")
///     .with_match("/echo/1.0.0", |id| id.starts_with("/echo/1."));
/// assert!(protocols.matches("/noise"));
/// assert!(protocols.matches("/echo/1.4.2"));
/// assert!(!protocols.matches("/echo/2.0.0"));
/// assert_eq!(protocols.supported(), ["/noise", "/echo/1.0.0"]);
/// ```
#[derive(Default)]
pub struct Protocols {
    /// Every entry in insertion order: its listed id and, for match entries, the
    /// predicate (exact entries match their id only).
    entries: Vec<(String, Option<MatchFn>)>,
}

impl Protocols {
    /// An empty set: accepts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts exactly `id` (and lists it in answer to `ls`).
    pub fn with_exact(mut self, id: impl Into<String>) -> Self {
        self.add_exact(id);
        self
    }

    /// Accepts every id for which `matches` returns `true`; `listed` is the id shown
    /// in answer to `ls` (it is accepted only if `matches` accepts it).
    pub fn with_match<F>(mut self, listed: impl Into<String>, matches: F) -> Self
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        self.add_match(listed, matches);
        self
    }

    /// In-place form of [`Protocols::with_exact`].
    pub fn add_exact(&mut self, id: impl Into<String>) -> &mut Self {
        self.entries.push((id.into(), None));
        self
    }

    /// In-place form of [`Protocols::with_match`].
    pub fn add_match<F>(&mut self, listed: impl Into<String>, matches: F) -> &mut Self
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        self.entries.push((listed.into(), Some(Box::new(matches))));
        self
    }
}

impl<S: Into<String>> FromIterator<S> for Protocols {
    /// A set of exact ids.
    fn from_iter<T: IntoIterator<Item = S>>(iter: T) -> Self {
        let mut protocols = Protocols::new();
        for id in iter {
            protocols.add_exact(id);
        }
        protocols
    }
}

impl ProtocolMatcher for Protocols {
    fn matches(&self, proposed: &str) -> bool {
        self.entries.iter().any(|(id, f)| match f {
            None => id == proposed,
            Some(f) => f(proposed),
        })
    }

    fn supported(&self) -> Vec<String> {
        self.entries.iter().map(|(id, _)| id.clone()).collect()
    }
}

impl fmt::Debug for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(id, f)| (id, f.is_some())))
            .finish()
    }
}

/// A list of exact ids.
impl<S: AsRef<str> + Send + Sync> ProtocolMatcher for Vec<S> {
    fn matches(&self, proposed: &str) -> bool {
        self.iter().any(|id| id.as_ref() == proposed)
    }

    fn supported(&self) -> Vec<String> {
        self.iter().map(|id| id.as_ref().to_owned()).collect()
    }
}

/// An array of exact ids.
impl<S: AsRef<str> + Send + Sync, const N: usize> ProtocolMatcher for [S; N] {
    fn matches(&self, proposed: &str) -> bool {
        self.iter().any(|id| id.as_ref() == proposed)
    }

    fn supported(&self) -> Vec<String> {
        self.iter().map(|id| id.as_ref().to_owned()).collect()
    }
}
