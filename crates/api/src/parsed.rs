//! Parsed GraphQL documents, a leaf shared by the schema, the response
//! cache, the request pipeline and the metrics: the operation a request
//! selects from its document ([`select_operation`]), and documents kept by
//! their shape ([`ParsedDocuments`]) so that a document sent again is not
//! lexed and parsed again. Clients send the same few documents over and
//! over, with new variables or with an id written inline: parsing one of
//! the published mix's documents costs 8–11 µs of CPU, copying its parsed
//! form 0.2–0.3 µs (`just bench parse`; docs/PERFORMANCE.md).
//!
//! A document is kept by its shape: its text with the contents of every
//! plain string literal replaced by a filler of the same length that
//! numbers it. `{ note(id: "42") { id } }` and `{ note(id: "97") { id } }`
//! share one parsed form, whose filler strings are swapped for each
//! request's own literals. Fillers keep the literal's length and are
//! ASCII like the literal (a literal with an escape or a non-ASCII
//! character is not shaped), so every position in the parsed form, and so
//! every error's `locations`, is the request's own.
//!
//! Only documents that passed the size, token and nesting limits and
//! parsed are kept, so a hit skips those checks too: the limits are fixed
//! for the life of the server, and a shape has the same size and tokens as
//! every text it stands for. The per-operation limits (depth, cost,
//! aliases…) depend on the variables and are checked on every request.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::parser::{Error as ParseError, Positioned, parse_query};
use async_graphql_value::{ConstValue, Value};
use moka::sync::Cache;

/// Bytes a parsed document is counted as, per byte of its text: a one-off
/// count of allocations gave 38–64 for the published mix's documents, so
/// counted high.
const PARSED_BYTES_PER_TEXT_BYTE: usize = 64;
/// Bytes every parsed document is counted as besides its text's share.
const PARSED_BYTES_OVERHEAD: usize = 1024;

/// A bounded map from a document's shape to its parsed form, fillers in
/// place of its literals; a clone shares the map (the metrics read its
/// size).
#[derive(Clone)]
pub(crate) struct ParsedDocuments(Cache<String, Arc<ExecutableDocument>>);

impl ParsedDocuments {
    /// Keeps parsed documents up to about `max_bytes` of memory, least
    /// used first out.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|text: &String, _: &Arc<ExecutableDocument>| {
                let bytes = text.len().saturating_mul(PARSED_BYTES_PER_TEXT_BYTE) + PARSED_BYTES_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        ParsedDocuments(cache)
    }

    /// The parsed form of `text`, when it or a text of the same shape was
    /// parsed before.
    pub(crate) fn get(&self, text: &str) -> Option<ExecutableDocument> {
        let Some(shape) = Shape::of(text) else {
            return self.0.get(text).map(|document| ExecutableDocument::clone(&document));
        };
        let template = self.0.get(shape.key.as_ref())?;
        Some(shape.fill(&template))
    }

    /// Parses `text`, which [`get`](Self::get) did not hold, and keeps its
    /// parsed form: by its shape, or by its exact text when it has none.
    /// A text with literals is parsed as its shape, whose form is kept and
    /// filled with the text's literals, so a new document costs one parse.
    pub(crate) fn parse(&self, text: &str) -> Result<ExecutableDocument, ParseError> {
        let Some(shape) = Shape::of(text).filter(|shape| !shape.literals.is_empty()) else {
            let document = parse_query(text)?;
            self.0.insert(text.to_owned(), Arc::new(document.clone()));
            return Ok(document);
        };
        // A shape parses exactly when its texts do. One whose fillers do
        // not each land once in a string value (an input object naming a
        // field twice keeps the last) is not kept, nor is one that does
        // not parse: the text is parsed on its own, for its own errors.
        let Some(template) = parse_query(shape.key.as_ref()).ok().and_then(|document| shape.checked(document)) else {
            return parse_query(text);
        };
        let document = shape.fill(&template);
        self.0.insert(shape.key.into_owned(), Arc::new(template));
        Ok(document)
    }

    /// Documents held now and the bytes they are counted as, once moka has
    /// applied its pending writes (it does so lazily).
    pub(crate) fn size(&self) -> (u64, u64) {
        self.0.run_pending_tasks();
        (self.0.entry_count(), self.0.weighted_size())
    }
}

/// The key `text` is kept by (see the module): its text with each plain
/// string literal's contents replaced by a filler; `None` when it cannot
/// have one. Texts with one key differ only in those literals' contents.
pub(crate) fn shape_key(text: &str) -> Option<Cow<'_, str>> {
    Shape::of(text).map(|shape| shape.key)
}

/// The characters fillers are written in: a filler is its literal's index
/// in base 62, least significant digit first, as long as the literal.
const FILLER_DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A text's shape: the key it is kept by, and the contents of its
/// non-empty plain string literals in order (an empty literal needs no
/// filler: it is the same in every text of the shape).
struct Shape<'a> {
    key: Cow<'a, str>,
    literals: Vec<&'a str>,
}

impl<'a> Shape<'a> {
    /// The shape of `text`, or `None` when it cannot have one: a block
    /// string, a literal with an escape, a non-ASCII character or no end,
    /// or a literal too short to number (62 one-character literals).
    /// Comments are skipped as the parser skips them, so a quote in a
    /// comment starts no literal. This scan is the parser's own rule for
    /// strings, written out because the parser keeps no token positions.
    fn of(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut key = Vec::new();
        let mut literals = Vec::new();
        let (mut copied, mut i) = (0, 0);
        while i < bytes.len() {
            match bytes[i] {
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                        i += 1;
                    }
                }
                b'"' if bytes[i..].starts_with(b"\"\"\"") => return None,
                b'"' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len() && bytes[end] != b'"' {
                        if matches!(bytes[end], b'\\' | b'\n' | b'\r') || !bytes[end].is_ascii() {
                            return None;
                        }
                        end += 1;
                    }
                    if end == bytes.len() {
                        return None;
                    }
                    if end > start {
                        if literals.is_empty() {
                            key.reserve_exact(bytes.len());
                        }
                        key.extend_from_slice(&bytes[copied..start]);
                        key.extend_from_slice(&filler(literals.len(), end - start)?);
                        literals.push(&text[start..end]);
                        copied = end;
                    }
                    i = end + 1;
                }
                _ => i += 1,
            }
        }
        if literals.is_empty() {
            return Some(Shape { key: Cow::Borrowed(text), literals });
        }
        key.extend_from_slice(&bytes[copied..]);
        // Only ASCII replaced ASCII, so the key is as valid as the text.
        let key = Cow::Owned(String::from_utf8(key).ok()?);
        Some(Shape { key, literals })
    }
}

impl Shape<'_> {
    /// `document`, the shape's parsed form, when every filler of this
    /// shape stands once in it as a string value, so that filling it puts
    /// each literal back where the text has it.
    fn checked(&self, mut document: ExecutableDocument) -> Option<ExecutableDocument> {
        let mut seen = vec![false; self.literals.len()];
        let mut once = true;
        for_each_string(&mut document, &mut |string| {
            if string.is_empty() {
                return;
            }
            match filler_index(string).and_then(|index| seen.get_mut(index)) {
                Some(seen) if !*seen => *seen = true,
                _ => once = false,
            }
        });
        (once && seen.iter().all(|seen| *seen)).then_some(document)
    }

    /// A copy of `template` with this text's literals in place of its
    /// fillers.
    fn fill(&self, template: &ExecutableDocument) -> ExecutableDocument {
        let mut document = template.clone();
        // A text without literals is its own shape: nothing to fill.
        if !self.literals.is_empty() {
            for_each_string(&mut document, &mut |string| {
                if let Some(literal) = filler_index(string).and_then(|index| self.literals.get(index)) {
                    string.clear();
                    string.push_str(literal);
                }
            });
        }
        document
    }
}

/// The filler numbering literal `index`, `len` characters long; `None`
/// when `len` characters cannot number it.
fn filler(mut index: usize, len: usize) -> Option<Vec<u8>> {
    let digits = (0..len)
        .map(|_| {
            let digit = FILLER_DIGITS[index % FILLER_DIGITS.len()];
            index /= FILLER_DIGITS.len();
            digit
        })
        .collect();
    (index == 0).then_some(digits)
}

/// The literal index a filler numbers; `None` for a string that is not a
/// filler.
fn filler_index(filler: &str) -> Option<usize> {
    if filler.is_empty() {
        return None;
    }
    filler.bytes().rev().try_fold(0usize, |index, byte| {
        let digit = FILLER_DIGITS.iter().position(|d| *d == byte)?;
        index.checked_mul(FILLER_DIGITS.len())?.checked_add(digit)
    })
}

/// Calls `f` on every string value in `document`: arguments, directives'
/// arguments and variables' defaults, inside lists and input objects too.
/// async-graphql has no mutable visitor, so the walk is written out.
fn for_each_string(document: &mut ExecutableDocument, f: &mut impl FnMut(&mut String)) {
    match &mut document.operations {
        DocumentOperations::Single(operation) => in_operation(&mut operation.node, f),
        DocumentOperations::Multiple(operations) => {
            operations.values_mut().for_each(|operation| in_operation(&mut operation.node, f));
        }
    }
    for fragment in document.fragments.values_mut() {
        in_directives(&mut fragment.node.directives, f);
        in_selection_set(&mut fragment.node.selection_set.node, f);
    }
}

/// [`for_each_string`] in an operation.
fn in_operation(operation: &mut OperationDefinition, f: &mut impl FnMut(&mut String)) {
    for variable in &mut operation.variable_definitions {
        in_directives(&mut variable.node.directives, f);
        if let Some(default) = &mut variable.node.default_value {
            in_const_value(&mut default.node, f);
        }
    }
    in_directives(&mut operation.directives, f);
    in_selection_set(&mut operation.selection_set.node, f);
}

/// [`for_each_string`] in a selection set.
fn in_selection_set(set: &mut SelectionSet, f: &mut impl FnMut(&mut String)) {
    for selection in &mut set.items {
        match &mut selection.node {
            Selection::Field(field) => {
                for (_, value) in &mut field.node.arguments {
                    in_value(&mut value.node, f);
                }
                in_directives(&mut field.node.directives, f);
                in_selection_set(&mut field.node.selection_set.node, f);
            }
            Selection::FragmentSpread(spread) => in_directives(&mut spread.node.directives, f),
            Selection::InlineFragment(inline) => {
                in_directives(&mut inline.node.directives, f);
                in_selection_set(&mut inline.node.selection_set.node, f);
            }
        }
    }
}

/// [`for_each_string`] in directives' arguments.
fn in_directives(directives: &mut [Positioned<Directive>], f: &mut impl FnMut(&mut String)) {
    for directive in directives {
        for (_, value) in &mut directive.node.arguments {
            in_value(&mut value.node, f);
        }
    }
}

/// [`for_each_string`] in an argument's value.
fn in_value(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(string) => f(string),
        Value::List(items) => items.iter_mut().for_each(|item| in_value(item, f)),
        Value::Object(fields) => fields.values_mut().for_each(|field| in_value(field, f)),
        _ => {}
    }
}

/// [`for_each_string`] in a variable's default.
fn in_const_value(value: &mut ConstValue, f: &mut impl FnMut(&mut String)) {
    match value {
        ConstValue::String(string) => f(string),
        ConstValue::List(items) => items.iter_mut().for_each(|item| in_const_value(item, f)),
        ConstValue::Object(fields) => fields.values_mut().for_each(|field| in_const_value(field, f)),
        _ => {}
    }
}
/// The operation a request runs, picked exactly as async-graphql picks it:
/// with a name, the operation of that name (an anonymous one has none);
/// without, the only operation, named or not. The parser keeps a single
/// *named* operation in `Multiple`, so "the only one" must look there too,
/// or a named query sent without `operationName` would escape the GET
/// refusal of mutations and the response cache.
pub(crate) fn select_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Documents with a `@` where a string literal goes, one for every
    /// place a literal can stand, and the lexical traps around them.
    const SKELETONS: &[&str] = &[
        "{ note(id: @) { id title } }",
        "{ a: note(id: @) { id } b: note(id: @) { id title } }",
        "query Q($t: String = @, $u: [String] = [@, @]) { notes(tag: $t, first: 2) { id } }",
        "{ searchNotes(text: @, first: 3, tag: @) { score note { id } } } # \"a quote in a comment\n",
        "# a comment \"@\"\r{ note(id: @) @include(if: true) { id } }",
        "query A @x(s: @) { note(id: @) { ...F @y(s: @) ... on Note @z(s: [@, {k: @, l: [@]}]) { id } } }
         query B { tag(name: @) { id } }
         fragment F on Note @w(s: @) { title }",
        "{ x(o: {a: @, a: @, b: {c: @}}) { id } }",
        "{ x(s: @, b: \"\"\"block @ \\\"\"\" string\"\"\") { id } }",
        "{ x(s: \"\", t: @ u: @) { id } }",
        "{ x(s: @) { id }",
    ];

    /// A literal's contents: plain ASCII (the kind that is shaped), or one
    /// with a character or escape that keeps its text out of shapes.
    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-zA-Z0-9 #{}(),:@.$!-]{0,7}",
            1 => "[a-zé€ ]{1,3}",
            1 => prop::sample::select(vec!["\\n", "\\\"", "\\u00e9", "\\\\", "a\\tb"]).prop_map(str::to_owned),
        ]
    }

    /// `skeleton` with the literals in its `@` slots.
    fn fill(skeleton: &str, literals: &[String]) -> String {
        let mut literals = literals.iter();
        skeleton
            .split('@')
            .enumerate()
            .map(|(i, piece)| match i {
                0 => piece.to_owned(),
                _ => format!("\"{}\"{piece}", literals.next().map_or("", String::as_str)),
            })
            .collect()
    }

    /// A parsed document as comparable data, every position included.
    fn as_json(document: &ExecutableDocument) -> serde_json::Value {
        serde_json::to_value(document).expect("a parsed document serializes")
    }

    #[test]
    fn texts_of_one_shape_share_one_parsed_form_with_their_own_literals() {
        // Arrange
        let parsed = ParsedDocuments::new(1 << 20);
        let first = r#"{ note(id: "42") { id title } }"#;
        let second = r#"{ note(id: "97") { id title } }"#;
        parsed.parse(first).unwrap();

        // Act
        let kept = parsed.get(second);
        let longer = parsed.get(r#"{ note(id: "970") { id title } }"#);

        // Assert
        assert_eq!(kept.map(|document| as_json(&document)), Some(as_json(&parse_query(second).unwrap())));
        assert!(longer.is_none(), "a longer literal is another shape: its positions differ");
        assert_eq!(parsed.size().0, 1);
    }

    #[test]
    fn a_text_with_an_escape_is_kept_by_its_exact_text() {
        let parsed = ParsedDocuments::new(1 << 20);
        let text = r#"{ note(id: "4\u0032") { id } }"#;
        parsed.parse(text).unwrap();

        assert!(parsed.get(r#"{ note(id: "4\u0033") { id } }"#).is_none());
        let kept = parsed.get(text).map(|document| as_json(&document));
        assert_eq!(kept, Some(as_json(&parse_query(text).unwrap())));
    }

    #[test]
    fn fillers_number_every_literal_they_are_long_enough_for() {
        assert_eq!(filler(0, 1).as_deref(), Some(&b"0"[..]));
        assert_eq!(filler(61, 1).as_deref(), Some(&b"z"[..]));
        assert_eq!(filler(62, 1), None);
        assert_eq!(filler(62, 3).as_deref(), Some(&b"010"[..]));
        for index in [0, 1, 61, 62, 3843, 3844, 1_000_000] {
            let filler = String::from_utf8(filler(index, 6).unwrap()).unwrap();
            assert_eq!(filler_index(&filler), Some(index));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever was kept before, a document read back is exactly the
        /// one the parser makes of the request's own text, positions and
        /// all, or nothing; and plain literals are always read back.
        #[test]
        fn a_kept_document_is_the_parse_of_the_requests_own_text(
            skeleton in prop::sample::select(SKELETONS),
            before in prop::collection::vec(literal(), 12),
            after in prop::collection::vec(literal(), 12),
        ) {
            let parsed = ParsedDocuments::new(1 << 20);
            let (first, second) = (fill(skeleton, &before), fill(skeleton, &after));
            let fresh = parsed.parse(&first);
            match (&fresh, parse_query(&first)) {
                (Ok(fresh), Ok(own)) => prop_assert_eq!(as_json(fresh), as_json(&own)),
                (Err(fresh), Err(own)) => prop_assert_eq!(fresh.to_string(), own.to_string()),
                (fresh, own) => prop_assert!(false, "{:?} parsed as {:?}", fresh.is_ok(), own.is_ok()),
            }

            let kept = parsed.get(&second);

            let own = parse_query(&second);
            match (&kept, &own) {
                (Some(kept), Ok(own)) => prop_assert_eq!(as_json(kept), as_json(own)),
                (Some(_), Err(error)) => prop_assert!(false, "kept a form of a text that does not parse: {}", error),
                (None, _) => {}
            }
            let plain = |literals: &[String]| literals.iter().all(|l| !l.contains('\\') && l.is_ascii());
            let shared = !skeleton.contains("a: @, a: @") && !skeleton.contains("\"\"\"");
            if own.is_ok() && shared && plain(&before) && plain(&after) && Shape::of(&first).map(|s| s.key) == Shape::of(&second).map(|s| s.key) {
                prop_assert!(kept.is_some(), "a text of a kept shape was parsed again");
            }
        }
    }
}
