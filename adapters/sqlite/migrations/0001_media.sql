-- Media rows of presign-only uploads.
-- created_at is unix nanoseconds (INTEGER) so ordering and keyset cursors are exact.
CREATE TABLE media (
    id              TEXT    NOT NULL PRIMARY KEY,
    bucket          TEXT    NOT NULL,
    key             TEXT    NOT NULL UNIQUE,
    organization_id TEXT    NOT NULL,
    uploader_id     TEXT    NOT NULL,
    filename        TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    declared_size   INTEGER NULL CHECK (declared_size >= 0),
    created_at      INTEGER NOT NULL
) STRICT;

-- Serves the newest-first keyset listing of one organization.
CREATE INDEX media_org_created_id ON media (organization_id, created_at DESC, id DESC);
