//! [`Touched`]: what one execution read, recorded by the code that read it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Tag;

/// What an execution read (its dependency tags) and whether its result
/// depends on who is asking. One per request; resolvers append to it.
#[derive(Debug, Default)]
pub struct Touched {
    tags: Mutex<Vec<Tag>>,
    viewer_dependent: AtomicBool,
}

impl Touched {
    /// Records that the execution read what `name` names.
    pub fn read(&self, name: &str) {
        let tag = Tag::new(name);
        // A poisoned lock only means another reader panicked mid-push; the
        // tags are still a valid list.
        let mut tags = self.tags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tags.push(tag);
    }

    /// Records that the result would differ for another viewer.
    pub fn viewer_dependent(&self) {
        self.viewer_dependent.store(true, Ordering::Relaxed);
    }

    /// True when a resolver said the result depends on the viewer.
    pub fn is_viewer_dependent(&self) -> bool {
        self.viewer_dependent.load(Ordering::Relaxed)
    }

    /// The recorded tags, deduplicated.
    pub fn take_tags(&self) -> Vec<Tag> {
        let mut tags = std::mem::take(&mut *self.tags.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        tags.sort_unstable_by_key(|t| t.sort_key());
        tags.dedup();
        tags
    }
}
