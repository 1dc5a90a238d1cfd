//! What makes two requests the same question, for the response cache's
//! keys (docs/CACHE.md): the normalized document, the operation name and
//! the canonical variables, hashed into a [`Fingerprint`]. A leaf beside
//! [`crate::parsed`]: the pipeline's cache stage computes it, and nothing
//! else of the crate is involved.

use std::fmt::Write as _;

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Request};
use async_graphql_value::Value;
use cache::Fingerprint;

/// What makes a request the same question as another, or `None` when its
/// response must not be cached: it does not parse, or selects a mutation,
/// a subscription or no operation.
///
/// The parts, in order: the document printed in one canonical form (no
/// comments or formatting; arguments, object fields, operations and
/// fragments in name order; selections keep their order, which is the
/// response's), the operation name, and the selected operation's variables
/// by name, each as given, or its default, or "absent".
///
/// Public so that the benchmarks (`just bench cache_key`) measure the
/// server's own key code.
pub fn fingerprint(request: &mut Request) -> Option<Fingerprint> {
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    let document = request.parsed_query().ok()?;
    let operation = crate::parsed::select_operation(document, operation_name.as_deref())?;
    if operation.ty != OperationType::Query {
        return None;
    }
    let mut text = String::with_capacity(256);
    print_document(&mut text, document);
    let mut vars = String::new();
    let mut definitions: Vec<_> = operation.variable_definitions.iter().map(|d| &d.node).collect();
    definitions.sort_by(|a, b| a.name.node.cmp(&b.name.node));
    for definition in definitions {
        let _ = write!(vars, "${}=", definition.name.node);
        match variables.get(&definition.name.node) {
            Some(value) => print_value(&mut vars, &value.clone().into_value()),
            None => match &definition.default_value {
                Some(default) => print_value(&mut vars, &default.node.clone().into_value()),
                None => vars.push_str("absent"),
            },
        }
        vars.push(';');
    }
    let name = operation_name.as_deref().map_or(b"\0".as_slice(), str::as_bytes);
    Some(Fingerprint::of([text.as_bytes(), name, vars.as_bytes()]))
}

/// The operation a request runs, as async-graphql would pick it.
fn print_document(out: &mut String, document: &ExecutableDocument) {
    match &document.operations {
        DocumentOperations::Single(op) => print_operation(out, None, &op.node),
        DocumentOperations::Multiple(ops) => {
            let mut ops: Vec<_> = ops.iter().collect();
            ops.sort_by(|a, b| a.0.cmp(b.0));
            for (name, op) in ops {
                print_operation(out, Some(name), &op.node);
            }
        }
    }
    let mut fragments: Vec<_> = document.fragments.iter().collect();
    fragments.sort_by(|a, b| a.0.cmp(b.0));
    for (name, fragment) in fragments {
        let _ = write!(out, "fragment {name} on {}", fragment.node.type_condition.node.on.node);
        print_directives(out, &fragment.node.directives);
        print_selection_set(out, &fragment.node.selection_set.node);
    }
}

fn print_operation(out: &mut String, name: Option<&Name>, op: &OperationDefinition) {
    let _ = write!(out, "{} {}(", op.ty, name.map_or("", |n| n.as_str()));
    let mut definitions: Vec<_> = op.variable_definitions.iter().map(|d| &d.node).collect();
    definitions.sort_by(|a, b| a.name.node.cmp(&b.name.node));
    for definition in definitions {
        let _ = write!(out, "${}:{}", definition.name.node, definition.var_type.node);
        if let Some(default) = &definition.default_value {
            out.push('=');
            print_value(out, &default.node.clone().into_value());
        }
        print_directives(out, &definition.directives);
        out.push(',');
    }
    out.push(')');
    print_directives(out, &op.directives);
    print_selection_set(out, &op.selection_set.node);
}

fn print_selection_set(out: &mut String, set: &SelectionSet) {
    if set.items.is_empty() {
        return;
    }
    out.push('{');
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                if let Some(alias) = &field.alias {
                    let _ = write!(out, "{}:", alias.node);
                }
                out.push_str(&field.name.node);
                print_arguments(out, &field.arguments);
                print_directives(out, &field.directives);
                print_selection_set(out, &field.selection_set.node);
            }
            Selection::FragmentSpread(spread) => {
                let _ = write!(out, "...{}", spread.node.fragment_name.node);
                print_directives(out, &spread.node.directives);
            }
            Selection::InlineFragment(inline) => {
                out.push_str("...");
                if let Some(condition) = &inline.node.type_condition {
                    let _ = write!(out, "on {}", condition.node.on.node);
                }
                print_directives(out, &inline.node.directives);
                print_selection_set(out, &inline.node.selection_set.node);
            }
        }
        out.push(' ');
    }
    out.push('}');
}

fn print_arguments(out: &mut String, arguments: &[(Positioned<Name>, Positioned<Value>)]) {
    if arguments.is_empty() {
        return;
    }
    let mut arguments: Vec<_> = arguments.iter().collect();
    arguments.sort_by(|a, b| a.0.node.cmp(&b.0.node));
    out.push('(');
    for (name, value) in arguments {
        let _ = write!(out, "{}:", name.node);
        print_value(out, &value.node);
        out.push(',');
    }
    out.push(')');
}

fn print_directives(out: &mut String, directives: &[Positioned<Directive>]) {
    for directive in directives {
        let _ = write!(out, "@{}", directive.node.name.node);
        print_arguments(out, &directive.node.arguments);
    }
}

/// A value with object fields in name order and strings JSON-quoted.
fn print_value(out: &mut String, value: &Value) {
    match value {
        Value::Variable(name) => {
            let _ = write!(out, "${name}");
        }
        Value::Null => out.push_str("null"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => {
            let _ = write!(out, "{}", serde_json::Value::String(s.clone()));
        }
        Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Binary(bytes) => {
            let _ = write!(out, "b{bytes:?}");
        }
        Value::Enum(name) => out.push_str(name),
        Value::List(items) => {
            out.push('[');
            for item in items {
                print_value(out, item);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (name, value) in fields {
                let _ = write!(out, "{name}:");
                print_value(out, value);
                out.push(',');
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Variables;
    use serde_json::json;

    use super::*;

    fn key(query: &str, variables: serde_json::Value) -> Option<Fingerprint> {
        fingerprint(&mut Request::new(query).variables(Variables::from_json(variables)))
    }

    #[test]
    fn formatting_comments_and_argument_order_do_not_matter() {
        let a = key(r#"{ notes(first: 3, tag: "rust") { id title } }"#, json!({}));
        let b = key("# a comment\nquery {\n  notes(tag: \"rust\",\n first: 3) {\n id\n title }\n}", json!({}));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, key(r#"{ notes(first: 3, tag: "rust") { title id } }"#, json!({})));
    }

    #[test]
    fn variables_are_canonical_with_defaults_applied() {
        let q = "query($f: Int = 5, $t: String) { notes(first: $f, tag: $t) { id } }";
        let a = key(q, json!({ "t": "x", "f": 5 }));
        assert_eq!(a, key(q, json!({ "f": 5, "t": "x" })));
        assert_eq!(a, key(q, json!({ "t": "x" })));
        assert_ne!(a, key(q, json!({ "t": "y" })));
        assert_ne!(key(q, json!({})), key(q, json!({ "t": null })));
    }

    #[test]
    fn mutations_and_unparseable_documents_have_no_key() {
        assert_eq!(key("mutation { deleteNote(id: \"1\") }", json!({})), None);
        assert_eq!(key("mutation Delete { deleteNote(id: \"1\") }", json!({})), None);
        assert_eq!(key("{ notes(", json!({})), None);
    }

    #[test]
    fn a_lone_named_query_has_a_key_with_or_without_its_name() {
        let q = "query Recent { notes(first: 3) { id } }";
        let unnamed = key(q, json!({}));
        assert!(unnamed.is_some(), "the engine runs the only operation when no name is given");
        let named = fingerprint(&mut Request::new(q).operation_name("Recent"));
        assert!(named.is_some());
        // The name is keyed as sent: the two answers are kept apart, which
        // costs one more miss, never a wrong answer.
        assert_ne!(unnamed, named);
        assert_eq!(fingerprint(&mut Request::new(q).operation_name("Other")), None);
        // Two operations and no name: the engine refuses, nothing to cache.
        assert_eq!(key("query A { notes { id } } query B { users { id } }", json!({})), None);
    }
}
