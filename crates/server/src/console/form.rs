//! Reading a posted console form: its fields in order (a name may repeat), one field by
//! name, the condition rows of the rule and segment editors, and a problem shown at a
//! field.

use crate::console::flag::ConstraintRow;
use crate::error::FieldProblem;

/// A form's fields, in order (repeated names allowed).
pub type Fields = Vec<(String, String)>;

/// The first field called `name`, or `""` when the form has none.
pub fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A problem shown at the field `path`.
pub fn problem(path: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Condition row `row` as typed (`c{row}_attribute`, `c{row}_op`, …).
pub fn constraint_row(fields: &Fields, row: usize) -> ConstraintRow {
    ConstraintRow {
        attribute: field(fields, &format!("c{row}_attribute"))
            .trim()
            .to_owned(),
        op: field(fields, &format!("c{row}_op")).to_owned(),
        values: field(fields, &format!("c{row}_values")).to_owned(),
        negate: field(fields, &format!("c{row}_negate")) == "true",
        case_insensitive: field(fields, &format!("c{row}_case_insensitive")) == "true",
    }
}
