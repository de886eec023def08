//! Errors become responses here, in one place.
//!
//! Policy: anything the caller got wrong is a 4xx whose body names the
//! problem. Anything that is our fault is a 500 with a generic body; its
//! detail rides in the response's extensions to the `metrics::track`
//! middleware, which sees every response and logs it once, and is never
//! sent (it may name files or URLs).
//!
//! [`ApiError`] answers in JSON (`{"error": "..."}`); the pages wrap it in
//! [`crate::pages::PageError`], which answers the same status and message
//! as an HTML page. Both go through [`ApiError::parts`].

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lc_api::ErrorBody;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    /// No token, or one the webapp does not know: asks for credentials
    /// (`WWW-Authenticate`).
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    MethodNotAllowed(String),
    NotImplemented(String),
    Unavailable(String),
    Internal(String),
}

/// What a caller is told of an internal error.
pub const INTERNAL_MESSAGE: &str = "internal error; the webapp's log has the details";

/// The detail of an internal error, on its way to the log (see
/// `metrics::track`).
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// An error as a response: its status, the message the caller sees, and
/// what only the log gets.
pub struct ErrorParts {
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<InternalDetail>,
}

impl ErrorParts {
    /// `body` with the status, and the detail for the log.
    pub fn respond(self, body: impl IntoResponse) -> Response {
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // Both schemes the webapp takes a token in (see security.rs).
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"lorry-controller\", charset=\"UTF-8\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lorry-controller\""),
            );
        }
        if let Some(detail) = self.detail {
            response.extensions_mut().insert(detail);
        }
        response
    }
}

impl ApiError {
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The one mapping from an error to what is answered and what is logged.
    pub fn parts(self) -> ErrorParts {
        let status = self.status();
        let (message, detail) = match self {
            ApiError::Internal(detail) => {
                (INTERNAL_MESSAGE.to_owned(), Some(InternalDetail(detail)))
            }
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::NotImplemented(m)
            | ApiError::Unavailable(m) => (m, None),
        };
        ErrorParts {
            status,
            message,
            detail,
        }
    }
}

impl From<lc_core::Error> for ApiError {
    fn from(err: lc_core::Error) -> ApiError {
        use lc_core::Error as E;
        match err {
            E::UnknownLorry(_)
            | E::UnknownJob(_)
            | E::UnknownSnapshot(_)
            | E::UnknownChannel(_) => ApiError::NotFound(err.to_string()),
            E::JobEnded(_) | E::JobRunning(_) | E::SnapshotExists(_) | E::SnapshotInUse { .. } => {
                ApiError::Conflict(err.to_string())
            }
            E::Invalid { .. } => ApiError::BadRequest(err.to_string()),
            _ if err.is_disk_full() => ApiError::Unavailable(format!(
                "{err}: STATEDB's disk is full (No space left on device, ENOSPC); \
                 reads still work"
            )),
            E::Open { .. }
            | E::Migrate { .. }
            | E::Thread(_)
            | E::Sqlite(_)
            | E::Corrupt(_)
            | E::Backup { .. } => ApiError::Internal(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = self.parts();
        let body = axum::Json(ErrorBody {
            error: parts.message.clone(),
        });
        parts.respond(body)
    }
}

/// The `{job_id}` of a URL. Ids are integers; anything else names no job
/// (404). Pages take `Result<JobId, ApiError>` to answer the error as a page.
#[derive(Debug, Clone, Copy)]
pub struct JobId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<JobId, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        text.parse()
            .map(JobId)
            .map_err(|_| ApiError::NotFound(format!("no job with id {text:?}: ids are integers")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_detail_goes_to_the_log_not_the_caller() {
        let response = ApiError::internal("cannot open /secret/state.db").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = response.extensions().get::<InternalDetail>().cloned();
        assert_eq!(
            detail.map(|d| d.0).as_deref(),
            Some("cannot open /secret/state.db")
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(INTERNAL_MESSAGE), "{body}");
        assert!(!body.contains("secret"), "{body}");

        let response = ApiError::NotFound("no job with id 7".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.extensions().get::<InternalDetail>().is_none());
    }
}
