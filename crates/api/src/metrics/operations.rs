//! Bounds the `operation` label: the first N distinct operation names get
//! their own series, later ones are counted as `other`, so a client that
//! sends thousands of names cannot make thousands of series.
//!
//! First come rather than most frequent: a fixed set keeps every series
//! stable for the life of the process (a name that moved to `other` later
//! would break its rate), and real clients send their names from the start.
//! Only an operation that validated may take a slot: a client sending junk
//! names in documents that do not parse or validate, early, would
//! otherwise fill every slot before the real operations arrive.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The label of operations without a name.
pub(super) const ANONYMOUS: &str = "anonymous";
/// The label of every name past the bound, and of names that are not
/// GraphQL names.
pub(super) const OTHER: &str = "other";
/// Longer names are counted as `other`: a label is not a place for a blob.
const MAX_NAME_BYTES: usize = 100;

/// The names that have a series of their own.
pub struct OperationNames {
    max: usize,
    /// Set once the bound is reached: then only reads happen.
    full: AtomicBool,
    /// A std lock: held for a lookup or an insert, never across an await.
    names: RwLock<HashSet<Box<str>>>,
}

impl OperationNames {
    /// A set that admits at most `max` names.
    pub fn new(max: usize) -> Self {
        OperationNames { max, full: AtomicBool::new(max == 0), names: RwLock::new(HashSet::new()) }
    }

    /// The label for an operation named `name`; a name not seen before
    /// takes a free slot only when `may_take_a_slot` (it validated).
    pub fn label<'a>(&self, name: Option<&'a str>, may_take_a_slot: bool) -> &'a str {
        let Some(name) = name else { return ANONYMOUS };
        if !is_graphql_name(name) {
            return OTHER;
        }
        let names = self.names.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.contains(name) {
            return name;
        }
        drop(names);
        if !may_take_a_slot || self.full.load(Ordering::Relaxed) {
            return OTHER;
        }
        let mut names = self.names.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.len() >= self.max {
            self.full.store(true, Ordering::Relaxed);
            return OTHER;
        }
        names.insert(name.into());
        name
    }
}

/// `[_A-Za-z][_0-9A-Za-z]*`, and not too long.
fn is_graphql_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_BYTES
        && bytes.next().is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_bound_are_other_and_known_names_stay() {
        let names = OperationNames::new(2);
        assert_eq!(names.label(Some("A"), true), "A");
        assert_eq!(names.label(Some("B"), true), "B");
        assert_eq!(names.label(Some("C"), true), OTHER);
        assert_eq!(names.label(Some("A"), true), "A");
        assert_eq!(names.label(None, true), ANONYMOUS);
    }

    #[test]
    fn only_operations_that_validated_take_a_slot() {
        let names = OperationNames::new(1);
        assert_eq!(names.label(Some("Junk"), false), OTHER);
        assert_eq!(names.label(Some("Real"), true), "Real");
        // A known name keeps its label even when that request failed.
        assert_eq!(names.label(Some("Real"), false), "Real");
        assert_eq!(names.label(Some("Junk"), true), OTHER, "the one slot is taken");
    }

    #[test]
    fn what_is_not_a_graphql_name_is_other() {
        let names = OperationNames::new(10);
        assert_eq!(names.label(Some("has space"), true), OTHER);
        assert_eq!(names.label(Some("1st"), true), OTHER);
        assert_eq!(names.label(Some(&"x".repeat(101)), true), OTHER);
        assert_eq!(names.label(Some(""), true), OTHER);
    }
}
