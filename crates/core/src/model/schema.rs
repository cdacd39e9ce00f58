//! OpenAPI schemas (feature `openapi`) for the parts of the model whose serde form is
//! written by hand — key newtypes, `By`, `Serve`, `Prerequisite`, constraint values
//! and variant maps — so the schema accepts exactly the JSON serde accepts. The
//! plain structs derive theirs next to their definitions.
//!
//! Checks that need more than one field (a variant named must be defined, weights
//! summing to 100 000, value types following `kind`) are validation's: documents
//! that pass these schemas can still be refused with 422.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{FlagKey, Prerequisite, Rollout, Serve, TARGETING_KEY};
use crate::validation::MAX_KEY_LEN;

/// Strings without control characters (what `char::is_control` refuses).
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

fn string(min_length: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min_length))
}

fn closed_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// A flag, segment or environment key: 1 to [`MAX_KEY_LEN`] bytes. The server's
/// document adds the name pattern.
pub(super) fn key() -> RefOr<Schema> {
    string(1)
        .max_length(Some(MAX_KEY_LEN))
        .pattern(Some(NO_CONTROL_PATTERN))
        .into()
}

/// `variants`: names (non-empty) to any JSON value, at least one.
pub(super) fn variants() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
        .property_names(Some(string(1).build()))
        .min_properties(Some(1))
        .description(Some(
            "Variant name → value, in order (the first is the one a ramp raises). Values \
             have the flag's `kind`; a boolean flag has exactly `on: true` and `off: false`.",
        ))
        .into()
}

/// `tags`: keys checked like flag keys.
pub(super) fn tags() -> Schema {
    ArrayBuilder::new()
        .items(
            string(1)
                .max_length(Some(MAX_KEY_LEN))
                .pattern(Some(NO_CONTROL_PATTERN)),
        )
        .description(Some("Labels; a tag can be killed as a whole."))
        .into()
}

/// `by`: one property name, or a non-empty list of fallbacks.
pub(super) fn by() -> Schema {
    OneOfBuilder::new()
        .item(string(1))
        .item(ArrayBuilder::new().items(string(1)).min_items(Some(1)))
        .default(Some(TARGETING_KEY.into()))
        .description(Some(
            "The context properties bucketed on: one name or a list, first present wins.",
        ))
        .into()
}

/// Constraint `values`: strings, numbers or booleans (kept in their string form).
pub(super) fn constraint_values() -> Schema {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
        ])))
        .description(Some(
            "Operands: strings, numbers or booleans. Required by every operator but \
             `exists`, which takes none.",
        ))
        .into()
}

impl PartialSchema for Serve {
    /// `{"variant": "on"}` or `{"rollout": {...}}`, nothing else.
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                closed_object()
                    .property("variant", string(1))
                    .required("variant"),
            )
            .item(
                closed_object()
                    .property("rollout", reference::<Rollout>())
                    .required("rollout"),
            )
            .description(Some(
                "What a rule or the default serves: one variant, or a rollout.",
            ))
            .into()
    }
}

impl ToSchema for Serve {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Rollout::name().into_owned(), Rollout::schema()));
        <Rollout as ToSchema>::schemas(schemas);
    }
}

impl PartialSchema for Prerequisite {
    /// `{"flag", "variant"}` or `{"flag", "variants": [..]}`.
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                closed_object()
                    .property("flag", reference::<FlagKey>())
                    .property("variant", string(1))
                    .required("flag")
                    .required("variant"),
            )
            .item(
                closed_object()
                    .property("flag", reference::<FlagKey>())
                    .property(
                        "variants",
                        ArrayBuilder::new().items(string(1)).min_items(Some(1)),
                    )
                    .required("flag")
                    .required("variants"),
            )
            .description(Some(
                "A flag that must evaluate to one of these variants for this one to be on.",
            ))
            .into()
    }
}

impl ToSchema for Prerequisite {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((FlagKey::name().into_owned(), FlagKey::schema()));
    }
}

impl PartialSchema for crate::Context {
    /// `{"targetingKey", "groups", attributes...}`: attributes are strings, numbers,
    /// booleans or lists of strings.
    fn schema() -> RefOr<Schema> {
        let strings = || ArrayBuilder::new().items(string(0));
        let attribute = OneOfBuilder::new()
            .item(string(0))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(strings());
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("targetingKey", string(0))
            .property("groups", strings())
            .additional_properties(Some(RefOr::T(Schema::from(attribute.build()))))
            .description(Some(
                "An evaluation context: `targetingKey`, `groups` and attributes (string, \
                 number, boolean or list of strings). The server limits the number of \
                 attributes and list items.",
            ))
            .into()
    }
}

impl ToSchema for crate::Context {}
