-- Presign-only uploads get the managed lifecycle: a row is 'pending' until its object is
-- checked in storage. Rows signed before this version are taken as confirmed (they were
-- listed and served as files); their size and etag stay unknown until reconcile or a
-- refresh records them.
ALTER TABLE media ADD COLUMN status TEXT NOT NULL DEFAULT 'confirmed'
    CHECK (status IN ('pending', 'confirmed'));
ALTER TABLE media ADD COLUMN size INTEGER NULL CHECK (size >= 0);
ALTER TABLE media ADD COLUMN etag TEXT NULL;
-- Unix nanoseconds, as created_at.
ALTER TABLE media ADD COLUMN upload_expires_at INTEGER NULL;

-- The listing filtered by status.
CREATE INDEX media_org_status_created_id
    ON media (organization_id, status, created_at DESC, id DESC);
