//! Prometheus's instant query API asked for one number: [`Prometheus`] (one query) and
//! [`PrometheusSource`], the [`MetricSource`] of the plan's `prometheus` metrics.
//!
//! Reading the answer ([`parse_answer`]) is separate from the HTTP call, so every shape
//! Prometheus answers with is tested without a server.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{judge, Measurement, MetricError, MetricKind, MetricRequest, MetricSource};
use crate::plan::PrometheusQuery;

/// How long one query may take. Prometheus's own default query timeout is 2 minutes; a
/// canary analysis that waits that long has already missed its interval, and a hung
/// server must count as unreachable rather than stall the release.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The placeholder in a plan's query that is replaced by the service's name.
const SERVICE_PLACEHOLDER: &str = "{{service}}";

/// The placeholder replaced by the region the service is released in (empty outside a
/// plan with `regions`).
const REGION_PLACEHOLDER: &str = "{{region}}";

/// A Prometheus server and the instant query a metric is measured with.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// `{url}/api/v1/query`.
    endpoint: String,
    query: String,
    client: reqwest::Client,
}

impl Prometheus {
    /// Measures `query.query` on the server at `query.url`.
    pub fn new(query: PrometheusQuery, client: reqwest::Client) -> Self {
        Prometheus {
            endpoint: format!("{}/api/v1/query", query.url.trim_end_matches('/')),
            query: query.query,
            client,
        }
    }
}

/// The source of `prometheus` metrics: each metric's query on its server.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    client: reqwest::Client,
}

impl PrometheusSource {
    /// Queries with `client`.
    pub fn new(client: reqwest::Client) -> Self {
        PrometheusSource { client }
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let Some((metric, query)) = request
            .metric
            .and_then(|m| Some((m, m.prometheus.as_ref()?)))
        else {
            return request.failed(MetricError::WrongKind(MetricKind::Prometheus));
        };
        let source = Prometheus::new(query.clone(), self.client.clone());
        let service = request.service;
        let measured = source.measure_in(service.written_name(), service.region.as_deref());
        judge(metric, measured.await)
    }
}

impl Prometheus {
    /// Measures once for `service` (replacing `{{service}}` in the query). `Ok(None)`
    /// means Prometheus answered without data (an empty or NaN result); the plan's
    /// `on_no_data` decides what that counts as.
    pub async fn measure(&self, service: &str) -> Result<Option<f64>, MetricError> {
        self.measure_in(service, None).await
    }

    /// Measures once for `service` in `region` (replacing `{{service}}` and
    /// `{{region}}` in the query).
    pub async fn measure_in(
        &self,
        service: &str,
        region: Option<&str>,
    ) -> Result<Option<f64>, MetricError> {
        let query = self
            .query
            .replace(SERVICE_PLACEHOLDER, service)
            .replace(REGION_PLACEHOLDER, region.unwrap_or_default());
        let unreachable = |source| MetricError::Unreachable {
            url: self.endpoint.clone(),
            source,
        };
        let response = self
            .client
            .get(&self.endpoint)
            .query(&[("query", query.as_str())])
            .timeout(QUERY_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        // Prometheus answers a bad query with 400/422 and a JSON body naming the PromQL
        // error, so the body is read before the status decides anything.
        let status_error = response.error_for_status_ref().err();
        let body = response.text().await.map_err(unreachable)?;
        match (parse_answer(&body), status_error) {
            (Err(e @ AnswerError::Query { .. }), _) => Err(MetricError::BadAnswer {
                url: self.endpoint.clone(),
                detail: e.to_string(),
            }),
            // Anything else with an HTTP error (a proxy's 502 page, a 404 for a wrong
            // path) is a server that cannot answer queries.
            (_, Some(status)) => Err(unreachable(status)),
            (Ok(value), None) => Ok(value),
            (Err(AnswerError::Decode(source)), None) => Err(MetricError::Undecodable {
                url: self.endpoint.clone(),
                source,
            }),
            (Err(e), None) => Err(MetricError::BadAnswer {
                url: self.endpoint.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

/// Why an answer of the instant query API is not one number (nor no data).
///
/// The messages read after "`url` answered …".
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The body is not the API's JSON, or a value is not a number.
    #[error("something that is not a Prometheus query result")]
    Decode(#[source] serde_json::Error),
    /// Prometheus refused or failed the query, e.g. a PromQL syntax error.
    #[error("error {error_type}: {error}")]
    Query {
        /// Prometheus's `errorType`, e.g. `bad_data`.
        error_type: String,
        /// Prometheus's `error`, e.g. `1:5: parse error: unclosed left parenthesis`.
        error: String,
    },
    /// The query selected several series where one number was expected.
    #[error("{0} series, but the query must return one number: aggregate them, e.g. `sum(...)`")]
    Series(usize),
    /// The query returned a range vector or a string.
    #[error("a {0} result, but the query must return one number (an instant vector or a scalar)")]
    ResultType(&'static str),
}

/// Reads the body of `GET /api/v1/query`: `Ok(None)` for an empty vector or NaN.
pub fn parse_answer(body: &str) -> Result<Option<f64>, AnswerError> {
    let answer: Answer = serde_json::from_str(body).map_err(AnswerError::Decode)?;
    let value = match answer {
        Answer::Error { error_type, error } => {
            return Err(AnswerError::Query { error_type, error })
        }
        Answer::Success { data } => match data {
            Data::Scalar(point) => point.1,
            Data::Vector(samples) => match samples.as_slice() {
                [] => return Ok(None),
                [sample] => sample.value.1,
                more => return Err(AnswerError::Series(more.len())),
            },
            Data::Matrix(_) => return Err(AnswerError::ResultType("range vector (matrix)")),
            Data::Text(_) => return Err(AnswerError::ResultType("string")),
        },
    };
    // NaN is what PromQL gives for 0/0, e.g. an error ratio without requests: no data.
    Ok((!value.is_nan()).then_some(value))
}

/// `{"status": "success", "data": …}` or `{"status": "error", "errorType": …, "error": …}`.
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Answer {
    Success {
        data: Data,
    },
    Error {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(default)]
        error: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Sample>),
    Scalar(Point),
    Matrix(serde::de::IgnoredAny),
    #[serde(rename = "string")]
    Text(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Sample {
    value: Point,
}

/// `[unix_time, "value"]`.
#[derive(Deserialize)]
struct Point(
    serde::de::IgnoredAny,
    #[serde(deserialize_with = "prometheus_float")] f64,
);

/// Prometheus writes values as strings so that `NaN`, `+Inf` and `-Inf` survive JSON;
/// Rust's float parser reads those spellings too.
fn prometheus_float<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(values: &[&str]) -> String {
        let series: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    r#"{{"metric":{{"__name__":"m","i":"{i}"}},"value":[1700000000.123,"{v}"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        )
    }

    fn scalar(value: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"resultType":"scalar","result":[1700000000,"{value}"]}}}}"#
        )
    }

    /// What an answer reads as: the value, or the error's message.
    fn check(body: &str, expected: Result<Option<f64>, &str>) {
        let found = parse_answer(body).map_err(|e| e.to_string());
        match (&found, &expected) {
            (Ok(found), Ok(expected)) if found == expected => {}
            (Err(found), Err(expected)) if found.contains(expected) => {}
            _ => panic!("for {body}\nexpected {expected:?}\nfound    {found:?}"),
        }
    }

    #[test]
    fn answers() {
        let cases: &[(String, Result<Option<f64>, &str>)] = &[
            (vector(&["0.2"]), Ok(Some(0.2))),
            (vector(&["1e-05"]), Ok(Some(1e-5))),
            (vector(&["+Inf"]), Ok(Some(f64::INFINITY))),
            (vector(&["-Inf"]), Ok(Some(f64::NEG_INFINITY))),
            (vector(&["NaN"]), Ok(None)),
            (vector(&[]), Ok(None)),
            (
                vector(&["1", "2"]),
                Err("2 series, but the query must return one number: aggregate them, e.g. `sum(...)`"),
            ),
            (scalar("3"), Ok(Some(3.0))),
            (scalar("NaN"), Ok(None)),
            (
                r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#
                    .into(),
                Err("error bad_data: 1:5: parse error: unclosed left parenthesis"),
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#
                    .into(),
                Err("a range vector (matrix) result"),
            ),
            (
                r#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#.into(),
                Err("a string result"),
            ),
            // Fields Prometheus may add are ignored.
            (
                r#"{"status":"success","warnings":["w"],"data":{"resultType":"scalar","result":[1,"4"]}}"#.into(),
                Ok(Some(4.0)),
            ),
            (vector(&["lots"]), Err("not a Prometheus query result")),
            ("<html>bad gateway</html>".into(), Err("not a Prometheus query result")),
            (r#"{"status":"success"}"#.into(), Err("not a Prometheus query result")),
        ];
        for (body, expected) in cases {
            check(body, *expected);
        }
    }

    #[test]
    fn a_value_that_is_not_a_number_keeps_the_reason() {
        let Err(AnswerError::Decode(source)) = parse_answer(&vector(&["lots"])) else {
            panic!("expected a decode error");
        };
        assert!(
            source.to_string().contains("`lots` is not a number"),
            "{source}"
        );
    }
}
