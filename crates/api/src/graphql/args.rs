//! Argument rules shared by resolvers: ids, keyset pages, tag names and the
//! fields of note inputs. Invalid input is BAD_USER_INPUT with a message
//! that says what is wrong, never a silent clamp.

use std::collections::BTreeSet;

use async_graphql::ID;
use db::Page;

use crate::error::ApiError;

/// The cap on every `first` argument (the schema's contract).
pub(crate) const MAX_FIRST: i32 = 100;
/// Default `first` of note lists (`notes`, `User.notes`, `Tag.notes`).
pub(crate) const NOTES_PAGE: i32 = 20;
/// Default `first` of `users`.
pub(crate) const USERS_PAGE: i32 = 20;
/// Default `first` of `tags`.
pub(crate) const TAGS_PAGE: i32 = 50;
/// Default `first` of `searchNotes`.
pub(crate) const SEARCH_PAGE: i32 = 10;
/// Default `first` of `Note.similar`.
pub(crate) const SIMILAR_PAGE: i32 = 5;
const MAX_TITLE_CHARS: usize = 200;
const MAX_BODY_CHARS: usize = 20_000;
const MAX_TAGS: usize = 10;
const MAX_TAG_CHARS: usize = 40;
/// Longest search text; the embedder reads the whole of it.
pub(crate) const MAX_SEARCH_TEXT_CHARS: usize = 2_000;

/// Parses a GraphQL `ID` into a typed database id.
pub(crate) fn parse_id<T: From<i64>>(id: &ID, what: &str) -> Result<T, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(T::from)
        .ok_or_else(|| ApiError::bad_input(format!("`{}` is not a valid {what} id", id.as_str())))
}

/// Checks a `first` argument: 0 to [`MAX_FIRST`]. `None` — `first: null`,
/// or a variable the request left out, which async-graphql does not replace
/// by the declared default as the GraphQL spec says it should — gets
/// `default`.
pub(crate) fn first(first: Option<i32>, default: i32) -> Result<i64, ApiError> {
    let first = first.unwrap_or(default);
    if !(0..=MAX_FIRST).contains(&first) {
        return Err(ApiError::bad_input(format!("`first` must be between 0 and {MAX_FIRST}, got {first}")));
    }
    Ok(i64::from(first))
}

/// A keyset page from `first` and `after`.
pub(crate) fn page<T: From<i64>>(
    first_arg: Option<i32>,
    default: i32,
    after: Option<&ID>,
    what: &str,
) -> Result<Page<T>, ApiError> {
    Ok(Page { first: first(first_arg, default)?, after: after.map(|id| parse_id(id, what)).transpose()? })
}

/// Tag names are stored trimmed and lower-cased; lookups use the same form.
pub(crate) fn normalize_tag(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A tag name to look up or filter by, normalised; one holding a NUL
/// character (U+0000), which no tag has and Postgres text cannot hold,
/// is refused rather than sent to the database.
pub(crate) fn tag_lookup(name: &str) -> Result<String, ApiError> {
    no_nul(name, "tag")?;
    Ok(normalize_tag(name))
}

/// Validates and normalises a tag list: deduplicated and sorted (the order
/// note write statements of `db::notes` need).
pub(crate) fn tags(names: &[String]) -> Result<Vec<String>, ApiError> {
    let set: BTreeSet<String> = names.iter().map(|n| normalize_tag(n)).collect();
    if set.len() > MAX_TAGS {
        return Err(ApiError::bad_input(format!("a note has at most {MAX_TAGS} tags")));
    }
    for name in &set {
        let valid_chars = name.chars().all(|c| c.is_alphanumeric() || "-_.+#".contains(c));
        if name.is_empty() || name.chars().count() > MAX_TAG_CHARS || !valid_chars {
            return Err(ApiError::bad_input(format!("tag names are 1 to {MAX_TAG_CHARS} letters, digits or `-_.+#`")));
        }
    }
    Ok(set.into_iter().collect())
}

/// Refuses a NUL character (U+0000), which Postgres text cannot hold:
/// stored, it would fail in the database and answer INTERNAL.
fn no_nul(text: &str, what: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(ApiError::bad_input(format!("`{what}` must not contain the NUL character (U+0000)")));
    }
    Ok(())
}

/// A note title: not blank, at most [`MAX_TITLE_CHARS`], no NUL.
pub(crate) fn title(title: &str) -> Result<String, ApiError> {
    no_nul(title, "title")?;
    let trimmed = title.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_input(format!("`title` must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    Ok(trimmed.to_owned())
}

/// A note body: at most [`MAX_BODY_CHARS`], no NUL.
pub(crate) fn body(body: &str) -> Result<String, ApiError> {
    no_nul(body, "body")?;
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_input(format!("`body` must be at most {MAX_BODY_CHARS} characters")));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_capped_not_clamped() {
        assert_eq!(first(Some(100), 20).unwrap(), 100);
        assert_eq!(first(Some(101), 20).unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(first(Some(-1), 20).unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(first(None, 20).unwrap(), 20);
    }

    #[test]
    fn ids_are_positive_decimals() {
        assert_eq!(parse_id::<i64>(&ID::from("42"), "note").unwrap(), 42);
        assert!(parse_id::<i64>(&ID::from("abc"), "note").is_err());
        assert!(parse_id::<i64>(&ID::from("0"), "note").is_err());
        assert!(parse_id::<i64>(&ID::from("99999999999999999999"), "note").is_err());
    }

    #[test]
    fn tags_are_normalised_deduplicated_and_sorted() {
        let input = vec![" Rust".to_owned(), "rust".to_owned(), "GraphQL".to_owned()];
        assert_eq!(tags(&input).unwrap(), vec!["graphql", "rust"]);
        assert!(tags(&["two words".to_owned()]).is_err());
        assert!(tags(&["  ".to_owned()]).is_err());
    }

    #[test]
    fn titles_must_not_be_blank() {
        assert!(title("   ").is_err());
        assert_eq!(title("  Hello ").unwrap(), "Hello");
    }

    #[test]
    fn titles_bodies_and_tag_lookups_hold_no_nul() {
        assert_eq!(title("a\0b").unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(body("a\0b").unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(body("a\u{1}b").unwrap(), "a\u{1}b");
        assert_eq!(tag_lookup("a\0").unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(tag_lookup(" Rust").unwrap(), "rust");
    }
}
