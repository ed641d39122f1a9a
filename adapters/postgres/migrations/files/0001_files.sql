-- FILES_DB: managed-mode buckets and objects (mirrors SQLite's migrations/files).
-- Instants are unix nanoseconds (BIGINT); COLLATE "C" keeps names, keys and paths in byte
-- order, so listings, cursors and reconcile's merge order match SQLite's exactly.
CREATE TABLE buckets (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name               TEXT COLLATE "C" NOT NULL,
    organization_id    TEXT COLLATE "C" NULL,      -- NULL: project-wide
    read_scope         TEXT NOT NULL CHECK (read_scope IN ('public', 'authenticated', 'org', 'user')),
    write_scope        TEXT NOT NULL,              -- 'org', 'user' or an access rule such as 'admin+'
    file_size_limit    BIGINT NULL CHECK (file_size_limit >= 0),
    allowed_mime_types TEXT NOT NULL,              -- comma-separated patterns; '' = any
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- Names are unique within an organization, and among project-wide buckets.
CREATE UNIQUE INDEX buckets_org_name ON buckets (organization_id, name)
    WHERE organization_id IS NOT NULL;
CREATE UNIQUE INDEX buckets_project_name ON buckets (name) WHERE organization_id IS NULL;

CREATE TABLE objects (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    bucket_id       TEXT COLLATE "C" NOT NULL REFERENCES buckets (id),
    organization_id TEXT COLLATE "C" NULL,
    owner_id        TEXT NOT NULL,
    segment         TEXT COLLATE "C" NOT NULL,  -- the key's first segment: user or organization id
    key             TEXT COLLATE "C" NOT NULL,  -- <segment>/<bucket name>/<path>
    path            TEXT COLLATE "C" NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    etag            TEXT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT NULL                 -- set while a delete is in progress
);

-- One row per storage key; also the reconcile scan in key order.
CREATE UNIQUE INDEX objects_key ON objects (key);
-- Listing by path within one bucket and owner segment (keyset pagination); also serves
-- emptying a bucket and the foreign-key check when a bucket is deleted.
CREATE INDEX objects_bucket_segment_path ON objects (bucket_id, segment, path);
-- Reconcile: stale pending rows, oldest first.
CREATE INDEX objects_pending_created ON objects (created_at, id) WHERE status = 'pending';
