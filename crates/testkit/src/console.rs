//! A signed-in console session over plain HTTP (no browser): the session cookie and
//! its CSRF token, pages fetched without following redirects so their answers can be
//! inspected.

use reqwest::redirect::Policy;

/// One answer: status, body and `Location` (for a redirect).
#[derive(Debug)]
pub struct Page {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
    /// Where a redirect goes.
    pub location: Option<String>,
}

/// A browser-less console session.
pub struct ConsoleSession {
    base: String,
    /// `sy_console=…`, as a `Cookie` header sends it.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    http: reqwest::Client,
}

impl ConsoleSession {
    /// Signs in at the server at `base` with `token`; panics if that fails.
    pub async fn sign_in(base: &str, token: &str) -> ConsoleSession {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(crate::DEADLINE)
            .build()
            .expect("HTTP client");
        let response = http
            .post(format!("{base}/console/login"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("sign-in sent");
        assert_eq!(response.status(), 303, "sign-in refused");
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let mut session = ConsoleSession {
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
            http,
        };
        let home = session.get("/console").await;
        assert_eq!(home.status, 200, "{}", home.body);
        session.csrf = csrf_of(&home.body);
        session
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// `POST path` with `form` and the session's CSRF token.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut fields = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_exactly(path, &fields).await
    }

    /// `POST path` with exactly `form` (no CSRF token added).
    pub async fn post_exactly(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.expect("body");
        Page {
            status,
            body,
            location,
        }
    }
}

/// The CSRF token a console page carries in its `<meta name="csrf-token">`.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let start = page.find(marker).expect("a csrf-token meta") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("the token")
        .to_owned()
}
