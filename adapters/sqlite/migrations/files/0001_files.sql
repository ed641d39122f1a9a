-- FILES_DB: managed-mode buckets and objects (a database file of its own).
-- Instants are unix nanoseconds (INTEGER), as in the media database.
CREATE TABLE buckets (
    id                 TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    organization_id    TEXT    NULL,      -- NULL: project-wide
    read_scope         TEXT    NOT NULL CHECK (read_scope IN ('public', 'authenticated', 'org', 'user')),
    write_scope        TEXT    NOT NULL,  -- 'org', 'user' or an access rule such as 'admin+'
    file_size_limit    INTEGER NULL CHECK (file_size_limit >= 0),
    allowed_mime_types TEXT    NOT NULL,  -- comma-separated patterns ('image/*,application/pdf'); '' = any
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- Names are unique within an organization, and among project-wide buckets.
CREATE UNIQUE INDEX buckets_org_name ON buckets (organization_id, name)
    WHERE organization_id IS NOT NULL;
CREATE UNIQUE INDEX buckets_project_name ON buckets (name) WHERE organization_id IS NULL;

CREATE TABLE objects (
    id              TEXT    NOT NULL PRIMARY KEY,
    bucket_id       TEXT    NOT NULL REFERENCES buckets (id),
    organization_id TEXT    NULL,
    owner_id        TEXT    NOT NULL,
    segment         TEXT    NOT NULL,     -- the key's first segment: user id or organization id
    key             TEXT    NOT NULL,     -- <segment>/<bucket name>/<path>
    path            TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    etag            TEXT    NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER NULL          -- set while a delete is in progress
) STRICT;

-- One row per storage key; also the reconcile scan in key order.
CREATE UNIQUE INDEX objects_key ON objects (key);
-- Listing by path within one bucket and owner segment (keyset pagination); also serves
-- emptying a bucket and the foreign-key check when a bucket is deleted.
CREATE INDEX objects_bucket_segment_path ON objects (bucket_id, segment, path);
-- Reconcile: stale pending rows, oldest first.
CREATE INDEX objects_pending_created ON objects (created_at, id) WHERE status = 'pending';
