//! Salesforce's error bodies, in their exact JSON shapes:
//! REST `[{"message","errorCode","fields"?}]`, collection results
//! `{"statusCode","message","fields"}`, and OAuth `{"error","error_description"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One Salesforce error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    /// `errorCode` (REST) or `statusCode` (collections).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Fields the error is about; `None` when Salesforce sends no `fields` key.
    pub fields: Option<Vec<String>>,
}

impl SfError {
    /// An error without a `fields` key.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        SfError { code: code.into(), message: message.into(), fields: None }
    }

    /// An error about `fields`.
    pub fn with_fields(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        SfError { code: code.into(), message: message.into(), fields: Some(fields) }
    }

    /// REST shape: `{"message","errorCode","fields"?}`.
    pub fn rest_json(&self) -> Value {
        let mut v = json!({ "message": self.message, "errorCode": self.code });
        if let Some(f) = &self.fields {
            v["fields"] = json!(f);
        }
        v
    }

    /// Collection-result shape: `{"statusCode","message","fields"}`.
    pub fn collection_json(&self) -> Value {
        json!({
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields.clone().unwrap_or_default(),
        })
    }

    /// 401 INVALID_SESSION_ID.
    pub fn invalid_session() -> Self {
        SfError::new("INVALID_SESSION_ID", "Session expired or invalid")
    }

    /// 404 NOT_FOUND for a missing resource.
    pub fn not_found() -> Self {
        SfError::new("NOT_FOUND", "The requested resource does not exist")
    }

    /// 404 ENTITY_IS_DELETED.
    pub fn entity_deleted() -> Self {
        SfError::with_fields("ENTITY_IS_DELETED", "entity is deleted", vec![])
    }
}

/// A failed REST call: a status and the error array.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The errors, usually one.
    pub errors: Vec<SfError>,
}

impl ApiError {
    /// One error with `status`.
    pub fn new(status: StatusCode, error: SfError) -> Self {
        ApiError { status, errors: vec![error] }
    }
    /// 400 with one error.
    pub fn bad_request(error: SfError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
    /// 404 with one error.
    pub fn not_found(error: SfError) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }
    /// The JSON body.
    pub fn body(&self) -> Value {
        Value::Array(self.errors.iter().map(SfError::rest_json).collect())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// An OAuth endpoint error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status (Salesforce uses 400 for token errors, client ones included).
    pub status: StatusCode,
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

impl OAuthError {
    /// A 400 error.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into() }
    }
    /// `invalid_grant` / `expired access/refresh token`.
    pub fn dead_refresh_token() -> Self {
        Self::new("invalid_grant", "expired access/refresh token")
    }
    /// `invalid_client_id` / `client identifier invalid`.
    pub fn unknown_client() -> Self {
        Self::new("invalid_client_id", "client identifier invalid")
    }
    /// `invalid_client` / `invalid client credentials`.
    pub fn bad_secret() -> Self {
        Self::new("invalid_client", "invalid client credentials")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.error, "error_description": self.description }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_salesforce() {
        let e = SfError::with_fields("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", vec!["LastName".into()]);
        assert_eq!(
            serde_json::to_string(&e.rest_json()).unwrap(),
            r#"{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}"#
        );
        assert_eq!(
            serde_json::to_string(&e.collection_json()).unwrap(),
            r#"{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [LastName]","fields":["LastName"]}"#
        );
        assert_eq!(
            serde_json::to_string(&SfError::invalid_session().rest_json()).unwrap(),
            r#"{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}"#
        );
    }
}
