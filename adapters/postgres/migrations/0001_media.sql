-- Media rows of presign-only uploads (mirrors the SQLite schema at its version 3).
-- created_at and upload_expires_at are unix nanoseconds (BIGINT) so ordering and keyset
-- cursors are exact and identical to SQLite's. COLLATE "C" gives byte order, as storage
-- lists keys.
CREATE TABLE media (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    bucket            TEXT             NOT NULL,
    key               TEXT COLLATE "C" NOT NULL UNIQUE,
    organization_id   TEXT COLLATE "C" NOT NULL,
    uploader_id       TEXT             NOT NULL,
    filename          TEXT             NOT NULL,
    content_type      TEXT             NOT NULL,
    declared_size     BIGINT           NULL CHECK (declared_size >= 0),
    created_at        BIGINT           NOT NULL,
    status            TEXT             NOT NULL DEFAULT 'confirmed'
                          CHECK (status IN ('pending', 'confirmed')),
    size              BIGINT           NULL CHECK (size >= 0),
    etag              TEXT             NULL,
    upload_expires_at BIGINT           NULL
);

-- The newest-first keyset listing of one organization, with and without a status.
CREATE INDEX media_org_created_id ON media (organization_id, created_at DESC, id DESC);
CREATE INDEX media_org_status_created_id
    ON media (organization_id, status, created_at DESC, id DESC);
