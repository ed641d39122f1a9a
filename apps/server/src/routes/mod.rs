pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod media;
pub(crate) mod ops;
pub(crate) mod storage;
pub(crate) mod token;
pub(crate) mod ui;

/// A JSON body serialized already, with the `Content-Type` axum's `Json` would give it.
pub(crate) fn json_body(body: impl Into<axum::body::Body>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}
