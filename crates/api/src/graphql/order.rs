//! Response keys in the order the query asked for them.
//!
//! The GraphQL specification orders a response's fields as the selection
//! set does (fragments flattened in place). async-graphql resolves an
//! object's fields concurrently and inserts each when it completes, so a
//! field that waits on a loader batch lands after fields selected below it:
//! `{ note { author { name } title } }` came back as `title, author`.
//! [`KeyOrder`] is taken from the parsed document before execution and
//! puts every object of the response back in selection order afterwards.
//!
//! Cheap by construction: a small tree per request (one node per distinct
//! response key), and an object already in order (most are: fields that
//! resolve at once finish in order) is checked, not rebuilt.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Request, Value};

/// Deepest selection nesting followed; documents past the depth limit are
/// refused before this runs, so this only guards against a cycle.
const MAX_DEPTH: usize = 64;

/// The response keys of one selection set, in order, each with the order
/// of its own sub-selection.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct KeyOrder(Vec<(Name, KeyOrder)>);

impl KeyOrder {
    /// The order of the operation `request` runs, or `None` when the
    /// document does not parse or names no operation (execution reports
    /// that, with no data to order).
    pub(crate) fn of_request(request: &mut Request) -> Option<KeyOrder> {
        let name = request.operation_name.clone();
        let document = request.parsed_query().ok()?;
        let operation = crate::parsed::select_operation(document, name.as_deref())?;
        let mut order = KeyOrder::default();
        order.collect(&operation.selection_set, document, 0);
        Some(order)
    }

    /// Adds the keys of `set`, fragments flattened where they are spread
    /// (the specification's CollectFields order).
    fn collect(&mut self, set: &Positioned<SelectionSet>, document: &ExecutableDocument, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let key = &field.node.response_key().node;
                    let index = match self.0.iter().position(|(k, _)| k == key) {
                        Some(index) => index,
                        None => {
                            self.0.push((key.clone(), KeyOrder::default()));
                            self.0.len() - 1
                        }
                    };
                    self.0[index].1.collect(&field.node.selection_set, document, depth + 1);
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                        self.collect(&fragment.node.selection_set, document, depth + 1);
                    }
                }
                Selection::InlineFragment(inline) => self.collect(&inline.node.selection_set, document, depth + 1),
            }
        }
    }

    /// Puts every object in `value` in selection order.
    pub(crate) fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if !self.in_order(map.keys()) {
                    map.sort_by(|a, _, b, _| self.rank(a).cmp(&self.rank(b)));
                }
                for (key, child) in map.iter_mut() {
                    if let Some((_, order)) = self.0.iter().find(|(k, _)| k == key)
                        && !order.0.is_empty()
                    {
                        order.apply(child);
                    }
                }
            }
            Value::List(items) => items.iter_mut().for_each(|item| self.apply(item)),
            _ => {}
        }
    }

    /// The order of the selection of `key`, when the document selects it.
    pub(crate) fn of(&self, key: &Name) -> Option<&KeyOrder> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, order)| order)
    }

    /// Where `key` goes (keys the document did not select last).
    pub(crate) fn rank(&self, key: &Name) -> usize {
        self.0.iter().position(|(k, _)| k == key).unwrap_or(usize::MAX)
    }

    /// True when `keys` already follow the selection order.
    fn in_order<'a>(&self, keys: impl Iterator<Item = &'a Name>) -> bool {
        let mut last = 0;
        for key in keys {
            let rank = self.rank(key);
            if rank < last {
                return false;
            }
            last = rank;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(query: &str) -> KeyOrder {
        KeyOrder::of_request(&mut Request::new(query)).unwrap()
    }

    fn keys(value: &Value) -> Vec<&str> {
        match value {
            Value::Object(map) => map.keys().map(Name::as_str).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn objects_and_lists_follow_the_selection_with_fragments_in_place() {
        let order = order(
            "query { notes { ...N author { name id } id } me { id } } \
             fragment N on Note { title ... on Note { body } }",
        );
        let mut value = Value::from_json(serde_json::json!({
            "me": { "id": "1" },
            "notes": [
                { "id": "2", "author": { "id": "1", "name": "Ada" }, "body": "b", "title": "t" },
                { "title": "t", "body": "b", "author": { "name": "Ada", "id": "1" }, "id": "3" }
            ]
        }))
        .unwrap();

        order.apply(&mut value);

        let Value::Object(root) = &value else { panic!() };
        assert_eq!(keys(&value), ["notes", "me"]);
        let Value::List(notes) = &root["notes"] else { panic!() };
        for note in notes {
            assert_eq!(keys(note), ["title", "body", "author", "id"]);
            let Value::Object(note) = note else { panic!() };
            assert_eq!(keys(&note["author"]), ["name", "id"]);
        }
    }

    #[test]
    fn aliases_are_the_keys_and_repeated_fields_merge() {
        let order = order("{ b: me { id } a: me { id } b: me { name } }");
        assert_eq!(order.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(order.0[0].1.0.len(), 2);
    }
}
