//! The `@defer` and `@stream` directive definitions the served schema
//! declares (the incremental-delivery RFC, as Apollo Client and urql speak
//! it). async-graphql's `#[Directive]` macro knows the `FIELD` location
//! only, and `@defer` sits on fragments, so both factories are written by
//! hand here. Neither changes how a field resolves: a request that does not
//! ask for incremental delivery runs as if they were absent (the RFC's
//! fallback), and one that does is split into parts before execution
//! ([`super::plan`]).

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::Directive;
use async_graphql::registry::{__DirectiveLocation, Deprecation, MetaDirective, MetaInputValue, Registry};
use async_graphql::{ContextDirective, CustomDirective, CustomDirectiveFactory, ServerResult};

/// `@defer(if: Boolean! = true, label: String)` on fragment spreads and
/// inline fragments.
pub struct Defer;

/// `@stream(if: Boolean! = true, label: String, initialCount: Int = 0)` on
/// fields.
pub struct Stream;

/// What a directive does while a field resolves: nothing (the split into
/// parts happened before execution).
struct Inert;

impl CustomDirective for Inert {}

impl CustomDirectiveFactory for Defer {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("defer")
    }

    fn register(&self, registry: &mut Registry) {
        let locations = vec![__DirectiveLocation::FRAGMENT_SPREAD, __DirectiveLocation::INLINE_FRAGMENT];
        registry.add_directive(definition("defer", locations, common_args()));
    }

    fn create(&self, _: &ContextDirective<'_>, _: &Directive) -> ServerResult<Box<dyn CustomDirective>> {
        Ok(Box::new(Inert))
    }
}

impl CustomDirectiveFactory for Stream {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("stream")
    }

    fn register(&self, registry: &mut Registry) {
        let mut args = common_args();
        args.insert("initialCount".into(), argument("initialCount", "Int", Some("0")));
        registry.add_directive(definition("stream", vec![__DirectiveLocation::FIELD], args));
    }

    fn create(&self, _: &ContextDirective<'_>, _: &Directive) -> ServerResult<Box<dyn CustomDirective>> {
        Ok(Box::new(Inert))
    }
}

/// The arguments both directives take: `if` and `label`.
fn common_args() -> IndexMap<String, MetaInputValue> {
    let mut args = IndexMap::new();
    args.insert("if".into(), argument("if", "Boolean!", Some("true")));
    args.insert("label".into(), argument("label", "String", None));
    args
}

fn definition(
    name: &str,
    locations: Vec<__DirectiveLocation>,
    args: IndexMap<String, MetaInputValue>,
) -> MetaDirective {
    MetaDirective {
        name: name.into(),
        description: None,
        locations,
        args,
        is_repeatable: false,
        visible: None,
        composable: None,
    }
}

fn argument(name: &str, ty: &str, default: Option<&str>) -> MetaInputValue {
    MetaInputValue {
        name: name.into(),
        description: None,
        ty: ty.into(),
        deprecation: Deprecation::NoDeprecated,
        default_value: default.map(Into::into),
        visible: None,
        inaccessible: false,
        tags: Vec::new(),
        is_secret: false,
        directive_invocations: Vec::new(),
    }
}
