//! The domain layer's error: what went wrong in terms a person can act on (a field, a
//! missing resource, a conflict, a stale version, a missing role), never an HTTP status.
//! `http::error` maps it to `ApiError` in one place; the console maps it to a message.

use serde_json::{Map, Value};
use vexil_core::ValidationErrors;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Invalid input; `fields` maps a field path to what is wrong with it.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Map<String, Value>,
    },
    #[error("{0}")]
    NotFound(String),
    /// Duplicate key, or a resource still referenced by others (`details` lists them).
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// A change refused for a reason with its own code (`approval_required`: the
    /// environment holds changes for approval; `stale`: an approval no longer matches the
    /// configuration).
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("version mismatch: the resource is at version {current}")]
    VersionMismatch { current: i64 },
    #[error("{0}")]
    Forbidden(String),
    /// The caller's identity no longer holds (the user behind a session is gone).
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong email or password")]
    BadCredentials,
    /// A signed-in user's password change with a wrong current password.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// Too many failed password checks for this account or address.
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Invalid input whose single problem is at `field`.
    pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut fields = Map::new();
        fields.insert(field.to_owned(), Value::String(message.clone()));
        Error::Invalid {
            message: format!("{field}: {message}"),
            fields,
        }
    }

    /// Invalid input at several fields (`field → problem`), all reported at once.
    pub(crate) fn invalid_fields(fields: Map<String, Value>) -> Self {
        let message = fields
            .iter()
            .map(|(field, problem)| format!("{field}: {}", problem.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        Error::Invalid { message, fields }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Error::NotFound(format!("{what} '{id}' not found"))
    }

    pub(crate) fn conflict(message: impl Into<String>, details: Value) -> Self {
        Error::Conflict {
            message: message.into(),
            details,
        }
    }

    pub(crate) fn internal(message: &'static str) -> Self {
        Error::Internal(anyhow::anyhow!(message))
    }

    /// The same problem reported under another field name (the Simple API calls a flag's
    /// key its `name`).
    pub(crate) fn rename_field(self, from: &str, to: &str) -> Self {
        match self {
            Error::Invalid {
                message,
                mut fields,
            } => {
                if let Some(v) = fields.remove(from) {
                    fields.insert(to.to_owned(), v);
                }
                Error::Invalid {
                    message: message.replacen(from, to, 1),
                    fields,
                }
            }
            other => other,
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        let mut fields = Map::new();
        for e in &errors {
            let key = if e.path.is_empty() {
                "body".to_owned()
            } else {
                e.path.clone()
            };
            // Keep the first message per field; the full list is in `message`.
            fields
                .entry(key)
                .or_insert_with(|| Value::String(e.message.clone()));
        }
        let message = match errors.len() {
            1 => errors.to_string(),
            n => format!("{n} problems: {}", errors.to_string().replace('\n', "; ")),
        };
        Error::Invalid { message, fields }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(_) => {
                Error::conflict("a resource with this key already exists", Value::Null)
            }
            StoreError::Unavailable(_) => Error::Unavailable,
            other => Error::Internal(other.into()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(e.into())
    }
}
