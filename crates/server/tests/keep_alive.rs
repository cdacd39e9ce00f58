//! Answers given before the request body is read (401 from the token check, 403 for
//! the wrong token kind, 404 for an unknown route) leave a keep-alive connection usable: one raw HTTP/1.1
//! connection sends many requests with bodies, every one is answered, and a good
//! request after them on the same connection still works.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use switchyard_server::http::drain::DRAIN_LIMIT;
use switchyard_testkit::in_process;
use switchyard_testkit::in_process::{app, boolean_flag, ADMIN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// An answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 connection, written and read by hand.
struct Connection(BufReader<TcpStream>);

impl Connection {
    async fn open(base: &str) -> Connection {
        let addr = base.strip_prefix("http://").expect("http base");
        Connection(BufReader::new(
            TcpStream::connect(addr).await.expect("connect"),
        ))
    }

    /// Sends one request and reads its answer (which must have a `Content-Length`).
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<Answer> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: switchyard\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.0.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;

        let mut status_line = String::new();
        if self.0.read_line(&mut status_line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Value::Null,
        };
        let length: usize = answer
            .header("content-length")
            .expect("answers carry Content-Length")
            .parse()
            .expect("a length");
        let mut bytes = vec![0; length];
        self.0.read_exact(&mut bytes).await?;
        answer.body = serde_json::from_slice(&bytes).expect("a JSON answer");
        Ok(answer)
    }
}

/// A request body of `size` bytes (valid JSON; its content never matters here).
fn padded(size: usize) -> Vec<u8> {
    let mut body = b"{\"pad\":\"".to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

#[tokio::test]
async fn early_errors_with_bodies_leave_the_keep_alive_connection_usable() {
    let server = in_process::start().await;
    server.create_env("prod").await;
    let sdk = server.token("service", "sdk", Some("prod")).await;
    let mut connection = Connection::open(&server.base).await;
    // Large enough that most of each body is still on its way when the answer is ready.
    let body = padded(256 * 1024);
    for round in 0..40 {
        let (method, path, token, status, code) = match round % 4 {
            0 => (
                "PUT",
                "/v1/admin/envs/prod/flags/checkout",
                Some("not-a-token"),
                401,
                "unauthorized",
            ),
            1 => ("POST", "/v1/admin/tokens", None, 401, "unauthorized"),
            // The route reads no body; the handler refuses the token kind first.
            2 => (
                "DELETE",
                "/v1/admin/tokens/service",
                Some(sdk.as_str()),
                403,
                "forbidden",
            ),
            _ => ("POST", "/v1/no-such-route", Some(ADMIN), 404, "not_found"),
        };
        let answer = connection
            .exchange(method, path, token, &body)
            .await
            .unwrap_or_else(|e| panic!("request {round} on the kept-alive connection: {e}"));
        assert_eq!(answer.status, status, "request {round}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], code, "request {round}");
        assert!(
            answer.body["error"]["message"].is_string(),
            "request {round}: {}",
            answer.body
        );
        assert_eq!(answer.header("connection"), None, "request {round}");
    }
    let flag = serde_json::to_vec(&boolean_flag("checkout")).expect("json");
    let answer = connection
        .exchange(
            "PUT",
            "/v1/admin/envs/prod/flags/checkout",
            Some(ADMIN),
            &flag,
        )
        .await
        .expect("a good request after the rejected ones");
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["key"], "checkout");
    server.stop().await;
}

#[tokio::test]
async fn a_body_too_long_to_drain_is_answered_with_connection_close() {
    let (router, _state, _dir) = app().await;
    let request = |size: usize| {
        Request::post("/v1/admin/tokens")
            .header(header::AUTHORIZATION, "Bearer not-a-token")
            .body(Body::from(padded(size)))
            .expect("request")
    };
    let too_long = router
        .clone()
        .oneshot(request(DRAIN_LIMIT + 4096))
        .await
        .expect("answer");
    assert_eq!(too_long.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        too_long
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let drained = router.oneshot(request(4096)).await.expect("answer");
    assert_eq!(drained.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(drained.headers().get(header::CONNECTION), None);
}
