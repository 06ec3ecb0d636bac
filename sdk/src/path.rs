//! Registry paths: every element of a launched application has one.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// A registry path such as `/shop/workflows/cart` or `/shop/portals/inventory`; other apps (and
/// later other nodes) refer to elements by it. Cheap to clone.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct Path(Arc<str>);

impl std::hash::Hash for Path {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: equal paths have equal text.
        self.0.hash(state);
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        // Clones of one path share their text: compare pointers before contents.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Path {
    /// Parses a path: a leading `/`, then one or more non-empty segments of letters, digits,
    /// `-`, `_` and `.`, separated by `/`.
    pub fn parse(text: &str) -> Result<Path, Error> {
        let bad = |reason: &str| Error::InvalidPath {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| bad("a path starts with '/'"))?;
        if rest.is_empty() {
            return Err(bad("a path has at least one segment"));
        }
        for segment in rest.split('/') {
            check_name(segment).map_err(|reason| bad(&reason))?;
        }
        Ok(Path(Arc::from(text)))
    }

    /// A path from text known to be well formed (used for placeholders after an error).
    pub(crate) fn placeholder(text: &str) -> Path {
        Path(Arc::from(text))
    }

    /// The path of the element `name` of `kind` (for example `workflows`) below this one.
    pub(crate) fn child(&self, kind: &str, name: &str) -> Path {
        Path(Arc::from(format!("{}/{kind}/{name}", self.0)))
    }

    /// This path with one more segment.
    pub(crate) fn join(&self, segment: &str) -> Path {
        Path(Arc::from(format!("{}/{segment}", self.0)))
    }

    /// A stable 64-bit hash of the path (the same in every run and on every machine).
    pub fn stable_id(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::data::StableHasher::default();
        self.as_str().hash(&mut h);
        h.finish()
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path names an element of another process: its first segment is `peers`
    /// and more follow (`/peers/bob/shop/portals/stock`). Asks to such a portal leave the
    /// system through its [`Gateway`](crate::Gateway); `/peers` itself names no element.
    pub fn is_remote(&self) -> bool {
        self.0.starts_with(PEERS_PREFIX)
    }

    /// Whether this path is `/peers` or lies below it (the part of the registry reserved for
    /// other processes).
    pub(crate) fn is_reserved(&self) -> bool {
        self.is_remote() || self.is_peers()
    }

    /// Whether this path is `/peers` itself.
    pub(crate) fn is_peers(&self) -> bool {
        &*self.0 == PEERS
    }

    /// `/peers`: the origin of asks that came from another process (never a workflow).
    pub(crate) fn peers() -> Path {
        Path(Arc::from(PEERS))
    }
}

/// The root of the paths of other processes' elements.
const PEERS: &str = "/peers";
/// What a remote path starts with.
const PEERS_PREFIX: &str = "/peers/";

/// Checks one name (an app, workflow, portal, … name).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name is not empty".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "'{c}' is not allowed in a name (use letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_paths_and_refuses_bad_ones() {
        assert_eq!(
            Path::parse("/app/workflows/wf").map(|p| p.to_string()).ok(),
            Some("/app/workflows/wf".into())
        );
        assert!(matches!(Path::parse("app"), Err(Error::InvalidPath { .. })));
        assert!(matches!(Path::parse("/"), Err(Error::InvalidPath { .. })));
        assert!(matches!(
            Path::parse("/a//b"),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            Path::parse("/a/b c"),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn only_paths_below_peers_are_remote() {
        let remote = |text: &str| Path::parse(text).map(|p| p.is_remote()).ok();
        assert_eq!(remote("/peers/bob/shop/portals/stock"), Some(true));
        assert_eq!(remote("/peers/bob"), Some(true));
        assert_eq!(
            remote("/peers"),
            Some(false),
            "/peers itself names no element"
        );
        assert_eq!(remote("/peersx/a"), Some(false));
        assert_eq!(remote("/shop/peers/a"), Some(false));
        assert!(Path::peers().is_reserved() && !Path::peers().is_remote());
    }
}
