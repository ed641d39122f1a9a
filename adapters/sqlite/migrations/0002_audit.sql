-- Security audit log: one row per call of a PUBLIC operation. Append only.
-- at is unix nanoseconds (INTEGER), like media.created_at.
CREATE TABLE audit_log (
    seq      INTEGER NOT NULL PRIMARY KEY,
    at       INTEGER NOT NULL,
    route    TEXT    NOT NULL,
    method   TEXT    NOT NULL,
    ip       TEXT    NULL,
    user_id  TEXT    NULL,
    resource TEXT    NULL
) STRICT;

-- Serves time-range reads and retention purges.
CREATE INDEX audit_log_at ON audit_log (at);
