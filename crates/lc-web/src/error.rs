//! The web layer's one error type.
//!
//! Policy: anything the caller got wrong is a 4xx whose JSON body names the
//! problem. Anything that is our fault is a 500 with a generic body; its
//! detail is logged once, here, and never sent (it may name files or URLs).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lc_api::ErrorBody;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(String),
    MethodNotAllowed(String),
    NotImplemented(String),
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<lc_core::Error> for ApiError {
    fn from(err: lc_core::Error) -> ApiError {
        use lc_core::Error as E;
        match err {
            E::UnknownLorry(_) | E::UnknownJob(_) => ApiError::NotFound(err.to_string()),
            E::JobEnded(_) | E::JobRunning(_) => ApiError::Conflict(err.to_string()),
            E::Invalid { .. } => ApiError::BadRequest(err.to_string()),
            E::Open { .. } | E::Migrate { .. } | E::Thread(_) | E::Sqlite(_) | E::Corrupt(_) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; the webapp's log has the details".to_owned()
            }
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::NotImplemented(m)
            | ApiError::Unavailable(m) => m,
        };
        (status, axum::Json(ErrorBody { error: message })).into_response()
    }
}
