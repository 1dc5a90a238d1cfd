//! [`Touched`]: what one execution read, recorded by the code that read it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Epoch, Tag};

/// What an execution read (its dependency tags) and whether its result
/// depends on who is asking. One per request; resolvers append to it.
#[derive(Debug)]
pub struct Touched {
    tags: Mutex<Vec<Tag>>,
    viewer_dependent: AtomicBool,
    /// The earliest epoch the data read may be as of (`u64::MAX`: now).
    as_of: AtomicU64,
}

impl Default for Touched {
    fn default() -> Self {
        Touched { tags: Mutex::default(), viewer_dependent: AtomicBool::new(false), as_of: AtomicU64::new(u64::MAX) }
    }
}

impl Touched {
    /// Records that the execution reads a copy of the data that may lack
    /// the writes invalidated after `epoch` (a read replica that has
    /// replayed only that far), so its response counts as begun then.
    pub fn read_as_of(&self, epoch: Epoch) {
        self.as_of.fetch_min(epoch.0, Ordering::SeqCst);
    }

    /// When an execution that began at `began` read its data as of: the
    /// earlier of the two.
    pub fn began(&self, began: Epoch) -> Epoch {
        began.min(Epoch(self.as_of.load(Ordering::SeqCst)))
    }

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
