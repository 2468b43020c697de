//! The one error type of the web handlers: a status and a message, answered
//! as a plain page or, for the JSON API, as
//! `{"error": "...", "fields": [{"field", "message"}]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::FieldProblem;
use crate::store::StoreError;

/// A failed request.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
    fields: Vec<FieldProblem>,
    json: bool,
}

impl WebError {
    /// An error answered as a plain page (see [`WebError::api`] for JSON).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError { status, message: message.into(), fields: Vec::new(), json: false }
    }

    /// Answers in the JSON API's shape.
    pub fn api(mut self) -> Self {
        self.json = true;
        self
    }

    /// Names the fields that were wrong (shown in the JSON answer).
    pub fn fields(mut self, fields: Vec<FieldProblem>) -> Self {
        self.fields = fields;
        self
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => WebError::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(m) => WebError::new(StatusCode::CONFLICT, m),
            other => {
                // The details may name files or SQL; they stay in the log.
                tracing::error!("store: {other}");
                WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "the database failed; see the server log")
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if self.json {
            (self.status, Json(json!({"error": self.message, "fields": self.fields}))).into_response()
        } else {
            // A page, not text/plain: escaped, so a message naming what
            // came in (an id from the path) cannot turn into markup.
            let title = self.status.canonical_reason().unwrap_or("Error");
            let page = format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{title} · Registry Admin</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
                 <body><main><section class=\"card narrow\"><h1>{title}</h1><p id=\"error\" role=\"alert\">{}</p>\
                 <p><a href=\"/\">Dashboard</a> · <a href=\"/people\">People</a> · <a href=\"/targets\">Provisioning Targets</a> · <a href=\"/servers\">OAuth2 Servers</a></p></section></main></body></html>\n",
                escape(&self.message)
            );
            (self.status, axum::response::Html(page)).into_response()
        }
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `.api()` on results, so JSON handlers can use `?` on store calls.
pub(super) trait Api<T> {
    /// The error, if any, answered in the JSON API's shape.
    fn api(self) -> Result<T, WebError>;
}

impl<T, E: Into<WebError>> Api<T> for Result<T, E> {
    fn api(self) -> Result<T, WebError> {
        self.map_err(|e| e.into().api())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: WebError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let html = r.headers()["content-type"].to_str().unwrap().starts_with("text/html");
        let body = String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap();
        // A page's message is its alert paragraph.
        let text = match html {
            true => body.split("role=\"alert\">").nth(1).and_then(|b| b.split("</p>").next()).unwrap().to_string(),
            false => body,
        };
        (status, text)
    }

    #[tokio::test]
    async fn a_page_escapes_what_the_message_repeats() {
        let e = WebError::from(StoreError::NotFound("person <script>alert(1)</script>".into()));
        assert_eq!(answer(e).await.1, "person &lt;script&gt;alert(1)&lt;/script&gt; not found");
    }

    #[tokio::test]
    async fn store_errors_answer_as_pages_or_json() {
        let not_found = || WebError::from(StoreError::NotFound("person P1".into()));
        assert_eq!(answer(not_found()).await, (StatusCode::NOT_FOUND, "person P1 not found".into()));
        assert_eq!(answer(not_found().api()).await, (StatusCode::NOT_FOUND, r#"{"error":"person P1 not found","fields":[]}"#.into()));
        let conflict = WebError::from(StoreError::Conflict("the id P1 is taken".into()));
        assert_eq!(answer(conflict).await, (StatusCode::CONFLICT, "the id P1 is taken".into()));
        let broken = WebError::from(StoreError::Sql(rusqlite::Error::InvalidQuery));
        assert_eq!(answer(broken).await, (StatusCode::INTERNAL_SERVER_ERROR, "the database failed; see the server log".into()));
        let fields = WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad").fields(vec![FieldProblem { field: "id".into(), message: "no".into() }]).api();
        assert_eq!(answer(fields).await.1, r#"{"error":"bad","fields":[{"field":"id","message":"no"}]}"#);
    }
}
