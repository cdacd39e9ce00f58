//! The error body of Switchyard's HTTP APIs, the flag server's and the orchestrator's:
//! `{"error": {"code", "message"}}`, with the problems of an invalid document and the
//! field path of each. The services build it from their own error type at their edge;
//! clients read it back with the same type.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "not_found"))]
    pub code: Cow<'static, str>,
    /// What went wrong, for people.
    pub message: String,
    /// With `invalid` (422): every problem and the field path it is at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldProblem>>,
    /// The orchestrator's `invalid_plan`: every problem of the release plan and its path
    /// (the flag server never sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub problems: Option<Vec<FieldProblem>>,
    /// The request's id (its `X-Request-Id`), also in the server's log lines about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One validation problem: `rules[2].serve.rollout.split` and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// The field path, e.g. `rules[0].when.constraints[1].values`.
    pub path: String,
    /// The problem.
    pub message: String,
}

impl ErrorBody {
    /// `{"error": {"code", "message"}}`.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: None,
                problems: None,
                request_id: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_on_the_wire() {
        let plain = ErrorBody::new("not_found", "no flag `x`");
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"not_found","message":"no flag `x`"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), plain);

        let problem = || FieldProblem {
            path: "steps[0].weight".into(),
            message: "must be between 1 and 100".into(),
        };
        let mut invalid = ErrorBody::new("invalid", "1 problem");
        invalid.error.details = Some(vec![problem()]);
        assert_eq!(
            serde_json::to_string(&invalid).unwrap(),
            r#"{"error":{"code":"invalid","message":"1 problem","details":[{"path":"steps[0].weight","message":"must be between 1 and 100"}]}}"#
        );
        let mut plan = ErrorBody::new("invalid_plan", "1 problem");
        plan.error.problems = Some(vec![problem()]);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"invalid_plan","message":"1 problem","problems":[{"path":"steps[0].weight","message":"must be between 1 and 100"}]}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), plan);
    }
}
