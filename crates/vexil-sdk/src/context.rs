//! `ContextBuilder`: a fluent way to build the evaluation [`Context`] (which is
//! `vexil_core::Context`, re-exported; it also deserializes from any JSON object).

use serde_json::Value;
use vexil_core::Context;

/// Builds a [`Context`]:
///
/// ```
/// use vexil_sdk::ContextBuilder;
/// let context = ContextBuilder::new("user-42")
///     .set("email", "ann@acme.com")
///     .set("seats", 120)
///     .set("account", serde_json::json!({"plan": "enterprise"}))
///     .build();
/// assert_eq!(context.targeting_key(), Some("user-42"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContextBuilder {
    context: Context,
}

impl ContextBuilder {
    /// A context for the unit `targeting_key` (a user id, an account id…), the attribute
    /// targets and rollouts use.
    pub fn new(targeting_key: impl Into<String>) -> ContextBuilder {
        ContextBuilder::anonymous().set("targetingKey", targeting_key.into())
    }

    /// A context without a targeting key (rollouts on it give `TARGETING_KEY_MISSING`).
    pub fn anonymous() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// Sets attribute `name` (replacing an earlier value). Nested objects are reached by
    /// dotted names in rules (`account.plan`).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> ContextBuilder {
        self.context.insert(name, value.into());
        self
    }

    pub fn build(self) -> Context {
        self.context
    }
}
