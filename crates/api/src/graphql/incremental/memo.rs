//! Root fields of an incremental query, resolved once for all its parts.
//! Below the root, the loaders' per-request memo answers a later part
//! ([`loaders::Tracked::memoized`]); root fields are single statements of
//! their own (a page, a search) or pick their loader by what the part
//! selects, so a deferred part asking for `note(id:)` again as its
//! fragment's ancestor is answered here with the object the initial part
//! resolved. A streamed root list is read once and each part gets its
//! slice of it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_graphql::{Context, Name, QueryPathSegment, Result, Value};

/// The request's root fields by response key (session data of an
/// incremental query's parts; absent otherwise).
#[derive(Default)]
pub(crate) struct RootMemo(Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>);

/// The slice of each streamed root list the running part returns
/// (request data of one part).
pub(crate) struct Slices(pub(crate) HashMap<String, Range<usize>>);

/// The root field `ctx` resolves: from the memo when an earlier part
/// resolved it, else `resolve`, remembered. Errors are not remembered.
/// Outside an incremental query, `resolve` alone.
pub(crate) async fn root<T>(ctx: &Context<'_>, resolve: impl Future<Output = Result<T>>) -> Result<T>
where
    T: Clone + Send + Sync + 'static,
{
    let Some(memo) = ctx.data_opt::<Arc<RootMemo>>() else { return resolve.await };
    // Within one operation a response key names one field with one set of
    // arguments (fields that share a key must merge).
    let key = ctx.item.node.response_key().node.to_string();
    let hit = memo.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned();
    if let Some(value) = hit.and_then(|hit| hit.downcast_ref::<T>().cloned()) {
        return Ok(value);
    }
    let value = resolve.await?;
    memo.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, Arc::new(value.clone()));
    Ok(value)
}

/// A root list, as [`root`], cut to the slice the running part streams.
pub(crate) async fn root_list<T>(ctx: &Context<'_>, resolve: impl Future<Output = Result<Vec<T>>>) -> Result<Vec<T>>
where
    T: Clone + Send + Sync + 'static,
{
    let list = root(ctx, resolve).await?;
    let key = ctx.item.node.response_key().node.as_str();
    Ok(match ctx.data_opt::<Slices>().and_then(|slices| slices.0.get(key)) {
        Some(range) => list.get(range.start.min(list.len())..range.end.min(list.len())).unwrap_or_default().to_vec(),
        None => list,
    })
}

/// True when the field `ctx` resolves selects `name`, in this part's
/// selection or in a fragment a later part of the same incremental query
/// delivers ([`super::plan::Ahead`]): what a resolver that picks its
/// statement by looking ahead asks, so that a deferred selection costs
/// the statements it costs without `@defer`.
pub(crate) fn selects(ctx: &Context<'_>, name: &str) -> bool {
    ctx.look_ahead().field(name).exists() || deferred_selects(ctx, name)
}

/// True when a later part selects `name` on the field `ctx` resolves.
fn deferred_selects(ctx: &Context<'_>, name: &str) -> bool {
    let Some((ahead, path)) = ahead(ctx) else { return false };
    ahead.selects(&path, name)
}

/// When the one selection of `name` on the field `ctx` resolves is in a
/// fragment a later part delivers (and this part selects no `name`): its
/// arguments, and whether it selects `below` in turn. What `user(id:)`
/// reads its page of notes by.
pub(crate) fn deferred_only(ctx: &Context<'_>, name: &str, below: &str) -> Option<(Vec<(Name, Value)>, bool)> {
    let (ahead, mut path) = ahead(ctx)?;
    let [selected] = ahead.selected(&path, name) else { return None };
    let arguments = selected.arguments.clone()?;
    path.push(selected.key.as_str());
    Some((arguments, ahead.selects(&path, below)))
}

/// True when a later part selects `name` on the field with response key
/// `key` below the field `ctx` resolves.
pub(crate) fn deferred_below(ctx: &Context<'_>, key: &str, name: &str) -> bool {
    let Some((ahead, mut path)) = ahead(ctx) else { return false };
    path.push(key);
    ahead.selects(&path, name)
}

/// The incremental query's [`Ahead`](super::plan::Ahead), and the response
/// path (list indices left out) of the field `ctx` resolves.
fn ahead<'a>(ctx: &'a Context<'_>) -> Option<(&'a super::plan::Ahead, Vec<&'a str>)> {
    let (ahead, node) = (ctx.data_opt::<super::plan::Ahead>()?, ctx.path_node.as_ref()?);
    let mut path: Vec<&str> = std::iter::once(node)
        .chain(node.parents())
        .filter_map(|node| match node.segment {
            QueryPathSegment::Name(key) => Some(key),
            QueryPathSegment::Index(_) => None,
        })
        .collect();
    path.reverse();
    Some((ahead, path))
}
