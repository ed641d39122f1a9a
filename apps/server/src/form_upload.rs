//! `multipart/form-data` uploads, what HTML forms and browser storage clients send for a
//! `File`: the one file part is the object, its own `Content-Type` the object's type; the
//! form envelope is never stored.
//!
//! Storage needs a PUT's length up front and a part's length is only known at its end, so
//! the part is spooled to a temporary file under the data folder (never held in memory),
//! then streamed from there. The file goes away when the upload ends, whatever its outcome.
//! Text fields without a file name (e.g. a client's `cacheControl`) are read and ignored.

use bytes::Bytes;
use filegate_core::Error;
use filegate_core::ports::ByteStream;
use futures::{StreamExt, TryStreamExt};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A text field bigger than this is refused (they carry options, not data).
const MAX_TEXT_FIELD: u64 = 16 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Whether `content_type` announces a form.
#[must_use]
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The file part of a form, spooled and ready to stream.
pub struct FormFile {
    /// The part's own type; `application/octet-stream` when it has none.
    pub content_type: String,
    pub size: u64,
    pub body: ByteStream,
}

/// Reads the form in `body`, spooling its one file part into `dir`.
///
/// # Errors
/// [`Error::Validation`]: on `contentType` without a boundary; on `body` when the form is
/// malformed, holds no file part or more than one, or a text field is too large.
/// [`Error::Internal`] when the spool file cannot be written.
pub async fn spool(
    content_type: &str,
    body: axum::body::Body,
    dir: &Path,
) -> Result<FormFile, Error> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::invalid("contentType", "a multipart form needs a boundary"))?;
    let bad = |why: &str| Error::invalid("body", why.to_owned());
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut spooled: Option<(tempfile::NamedTempFile, String, u64)> = None;
    loop {
        let field = form.next_field().await.map_err(|e| {
            tracing::debug!(error = %e, "malformed form");
            bad("is not a well-formed multipart form")
        })?;
        let Some(mut field) = field else { break };
        if field.file_name().is_none() {
            let mut seen = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(|_| bad("is cut short"))? {
                seen += chunk.len() as u64;
                if seen > MAX_TEXT_FIELD {
                    return Err(bad("has a text field over 16 KiB"));
                }
            }
            continue;
        }
        if spooled.is_some() {
            return Err(bad("must hold one file part, not several"));
        }
        let content_type = field.content_type().map_or_else(
            || "application/octet-stream".to_owned(),
            ToString::to_string,
        );
        let tmp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(dir)
            .map_err(|e| Error::internal(format!("cannot create a spool file: {e}")))?;
        let mut out = tokio::fs::File::from_std(
            tmp.reopen()
                .map_err(|e| Error::internal(format!("cannot open the spool file: {e}")))?,
        );
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(|_| bad("is cut short"))? {
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::internal(format!("cannot write the spool file: {e}")))?;
        }
        out.flush()
            .await
            .map_err(|e| Error::internal(format!("cannot write the spool file: {e}")))?;
        spooled = Some((tmp, content_type, size));
    }
    let (tmp, content_type, size) =
        spooled.ok_or_else(|| bad("holds no file part (a field with a filename)"))?;
    let file = tokio::fs::File::from_std(
        tmp.reopen()
            .map_err(|e| Error::internal(format!("cannot reopen the spool file: {e}")))?,
    );
    Ok(FormFile {
        content_type,
        size,
        body: read_stream(file, tmp),
    })
}

/// The spooled bytes; `tmp` lives as long as the stream, and its file with it.
fn read_stream(file: tokio::fs::File, tmp: tempfile::NamedTempFile) -> ByteStream {
    futures::stream::try_unfold((file, tmp), |(mut file, tmp)| async move {
        let mut buf = vec![0u8; READ_CHUNK];
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| Error::internal(format!("cannot read the spool file: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), (file, tmp))))
    })
    .into_stream()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// Field name, file name, content type, bytes.
    type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    fn form(parts: &[Part<'_>]) -> (String, Vec<u8>) {
        let mut body = Vec::new();
        for (name, filename, ct, bytes) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
            if let Some(f) = filename {
                let _ = write!(disp, "; filename=\"{f}\"");
            }
            body.extend_from_slice(disp.as_bytes());
            body.extend_from_slice(b"\r\n");
            if let Some(ct) = ct {
                body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        ("multipart/form-data; boundary=XyZ".to_owned(), body)
    }

    async fn collect(s: ByteStream) -> Vec<u8> {
        s.try_fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            Ok(acc)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_file_part_is_the_object_and_the_envelope_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (ct, body) = form(&[
            ("cacheControl", None, None, b"3600"),
            ("", Some("blob"), Some("image/png"), b"\x89PNG bytes"),
        ]);
        let f = spool(&ct, body.into(), dir.path()).await.unwrap();
        assert_eq!(f.content_type, "image/png");
        assert_eq!(f.size, 10);
        assert_eq!(collect(f.body).await, b"\x89PNG bytes");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn forms_without_exactly_one_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for parts in [
            vec![("a", None, None, &b"x"[..])],
            vec![
                ("a", Some("1.txt"), None, &b"x"[..]),
                ("b", Some("2.txt"), None, &b"y"[..]),
            ],
        ] {
            let (ct, body) = form(&parts);
            let err = spool(&ct, body.into(), dir.path()).await.err().unwrap();
            assert!(
                matches!(err, Error::Validation(ref f) if f[0].field == "body"),
                "{err:?}"
            );
        }
        let err = spool("multipart/form-data", Vec::new().into(), dir.path())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::Validation(ref f) if f[0].field == "contentType"));
        let err = spool(
            "multipart/form-data; boundary=XyZ",
            b"garbage".to_vec().into(),
            dir.path(),
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, Error::Validation(ref f) if f[0].field == "body"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
