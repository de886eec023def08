//! Form fields of POST requests, as the original took them.
//!
//! Bodies are `application/x-www-form-urlencoded` (curl's `-d`); an empty
//! body is fine. The content type is not checked, so scripts that forgot to
//! set it keep working. Every rejection is an [`ApiError`], never a 500.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use crate::error::ApiError;

/// The fields of a POST body.
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Fields, ApiError> {
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::PayloadTooLarge(format!("cannot read request body: {rejection}"))
        })?;
        Ok(Fields::parse(&body))
    }
}

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }

    /// A field that may be absent.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A field that must be present and non-empty.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.optional(name) {
            Some(value) if !value.is_empty() => Ok(value),
            Some(_) => Err(ApiError::BadRequest(format!("field {name} is empty"))),
            None => Err(ApiError::BadRequest(format!("field {name} is missing"))),
        }
    }

    /// A required integer field.
    pub fn required_int(&self, name: &str) -> Result<i64, ApiError> {
        parse_int(name, self.required(name)?)
    }

    /// An optional integer field; empty counts as absent.
    pub fn optional_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.optional(name) {
            None | Some("") => Ok(None),
            Some(value) => parse_int(name, value).map(Some),
        }
    }

    /// The `redirect` field of a form button: a path on this server.
    pub fn redirect(&self) -> Result<Option<&str>, ApiError> {
        match self.optional("redirect") {
            None | Some("") => Ok(None),
            Some(to) if crate::security::redirect_ok(to) => Ok(Some(to)),
            Some(to) => Err(ApiError::BadRequest(format!(
                "field redirect must be a path on this server starting with '/', not {to:?}"
            ))),
        }
    }
}

fn parse_int(name: &str, value: &str) -> Result<i64, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!("field {name} must be an integer, not {value:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded() {
        let f = Fields::parse(b"path=a%2Fb&job_id=+7&empty=&redirect=%2F1.0%2Fstatus-html");
        assert_eq!(f.required("path").expect("path"), "a/b");
        assert_eq!(f.required_int("job_id").expect("job_id"), 7);
        assert_eq!(f.optional_int("empty").expect("empty"), None);
        assert_eq!(f.redirect().expect("redirect"), Some("/1.0/status-html"));
    }

    #[test]
    fn bad_fields_are_named() {
        let f = Fields::parse(b"job_id=x&empty=&redirect=https://evil.example/");
        let msg = |e: ApiError| format!("{e:?}");
        assert!(msg(f.required_int("job_id").expect_err("x")).contains("job_id"));
        assert!(msg(f.required("empty").expect_err("empty")).contains("empty"));
        assert!(msg(f.required("path").expect_err("missing")).contains("path is missing"));
        assert!(f.redirect().is_err());
    }
}
