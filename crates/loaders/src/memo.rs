//! [`Memo`]: what one request loaded, kept for the rest of its life when
//! the request asks for it ([`crate::Tracked::memoized`]). An incremental
//! query runs in parts, each an execution of its own; the memo lets a
//! later part find the rows an earlier one loaded (a deferred fragment's
//! ancestors) instead of reading them again. Per request, never shared:
//! loaders stay shared and cache-free, and a memo dies with its request.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::tracker::lock;

/// Loaded values by loader and key (see the module docs).
#[derive(Default)]
pub(crate) struct Memo {
    /// By loader (the address of its shared state), a `HashMap<K, Option<V>>`.
    loaded: Mutex<HashMap<usize, Box<dyn Any + Send>>>,
}

impl Memo {
    /// What `loader` loaded for `key`, when it did: `Some(None)` is a key
    /// with nothing to load.
    pub(crate) fn get<K, V>(&self, loader: usize, key: &K) -> Option<Option<V>>
    where
        K: Eq + Hash + Send + 'static,
        V: Clone + Send + 'static,
    {
        let loaded = lock(&self.loaded);
        loaded.get(&loader)?.downcast_ref::<HashMap<K, Option<V>>>()?.get(key).cloned()
    }

    /// Remembers what `loader` loaded for `key`.
    pub(crate) fn put<K, V>(&self, loader: usize, key: K, value: Option<V>)
    where
        K: Eq + Hash + Send + 'static,
        V: Clone + Send + 'static,
    {
        let mut loaded = lock(&self.loaded);
        let entry = loaded.entry(loader).or_insert_with(|| Box::new(HashMap::<K, Option<V>>::new()));
        if let Some(values) = entry.downcast_mut::<HashMap<K, Option<V>>>() {
            values.insert(key, value);
        }
    }
}
