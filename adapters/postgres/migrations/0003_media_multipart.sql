-- A pending row of a multipart upload records storage's upload id and the part size of
-- its plan; confirmation clears both.
ALTER TABLE media ADD COLUMN multipart_upload_id TEXT;
ALTER TABLE media ADD COLUMN multipart_part_size BIGINT;
