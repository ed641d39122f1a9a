//! Presign-only media routes: `/api/v1/media/*`.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated, Request};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use filegate_core::media::{SignDownload, SignUpload};
use filegate_core::ports::Media;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUploadBody {
    filename: String,
    content_type: String,
    size: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUploadResponse {
    id: String,
    upload_url: String,
    method: &'static str,
    key: String,
    headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// `POST /api/v1/media/sign-upload`
pub async fn sign_upload(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiJson(body): ApiJson<SignUploadBody>,
) -> Result<Json<SignUploadResponse>, ApiError> {
    let out = state
        .media
        .sign_upload(
            principal.as_ref(),
            &info,
            SignUpload {
                filename: body.filename,
                content_type: body.content_type,
                size: body.size,
            },
        )
        .await?;
    tracing::info!(media.id = %out.id, key = %out.key, "signed upload");
    Ok(Json(SignUploadResponse {
        id: out.id.to_string(),
        upload_url: out.upload_url,
        method: "PUT",
        key: out.key.to_string(),
        headers: out.headers,
        expires_at: out.expires_at,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignDownloadBody {
    expires_in: Option<u64>,
    download_filename: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignDownloadResponse {
    url: String,
    method: &'static str,
    key: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// `POST /api/v1/media/{id}/sign-download`
pub async fn sign_download(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignDownloadBody>,
) -> Result<Json<SignDownloadResponse>, ApiError> {
    let out = state
        .media
        .sign_download(
            principal.as_ref(),
            &info,
            &id,
            SignDownload {
                expires_in: body.expires_in,
                download_filename: body.download_filename,
            },
        )
        .await?;
    Ok(Json(SignDownloadResponse {
        url: out.url,
        method: out.method,
        key: out.key.to_string(),
        expires_at: out.expires_at,
    }))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    id: String,
    key: String,
    bucket: String,
    filename: String,
    content_type: String,
    size: Option<u64>,
    uploader_id: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Media> for MediaView {
    fn from(m: Media) -> Self {
        Self {
            id: m.id.to_string(),
            key: m.key.to_string(),
            bucket: m.bucket.to_string(),
            filename: m.filename,
            content_type: m.content_type.to_string(),
            size: m.declared_size,
            uploader_id: m.uploader_id,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    items: Vec<MediaView>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/media?limit=&cursor=`
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let page = state
        .media
        .list(principal.as_ref(), &info, q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(MediaView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}
