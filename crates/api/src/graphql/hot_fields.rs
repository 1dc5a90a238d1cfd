//! Timings of a configured list of hot fields (`NOTEGRAPH_METRICS_HOT_FIELDS`,
//! `Type.field` each), as `notegraph_graphql_field_duration_seconds{field}`.
//!
//! It takes an async-graphql extension, and with any extension registered
//! async-graphql runs every field through the extension chain, which costs
//! an allocation per field. So the extension is registered only when the
//! list is not empty; by default there is none. Fields off the list are
//! passed through with one map lookup and no series, never a span.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo};
use async_graphql::{ServerResult, Value};
use prometheus::Histogram;

/// The extension factory: hot fields by type, then field name.
pub struct HotFields {
    fields: Arc<HashMap<String, HashMap<String, Histogram>>>,
}

impl HotFields {
    /// Times `fields` (`Type.field` each); `None` for an empty list, so that
    /// no extension is registered. A name without a dot is an error.
    pub fn new(fields: &[String]) -> Result<Option<Self>, String> {
        let mut by_type: HashMap<String, HashMap<String, Histogram>> = HashMap::new();
        for name in fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
            let Some((ty, field)) = name.split_once('.') else {
                return Err(format!("`{name}` is not `Type.field` (NOTEGRAPH_METRICS_HOT_FIELDS)"));
            };
            let histogram = crate::metrics::field_histogram(name);
            by_type.entry(ty.to_owned()).or_default().insert(field.to_owned(), histogram);
        }
        Ok((!by_type.is_empty()).then(|| HotFields { fields: Arc::new(by_type) }))
    }
}

impl ExtensionFactory for HotFields {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Timer { fields: Arc::clone(&self.fields) })
    }
}

struct Timer {
    fields: Arc<HashMap<String, HashMap<String, Histogram>>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Timer {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let Some(histogram) = self.fields.get(info.parent_type).and_then(|fields| fields.get(info.name)) else {
            return next.run(ctx, info).await;
        };
        let started = Instant::now();
        let resolved = next.run(ctx, info).await;
        histogram.observe(started.elapsed().as_secs_f64());
        resolved
    }
}
