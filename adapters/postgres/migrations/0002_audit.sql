-- Security audit log: one row per call of a PUBLIC operation. Append only.
-- at is unix nanoseconds (BIGINT), like media.created_at.
CREATE TABLE audit_log (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       BIGINT NOT NULL,
    route    TEXT   NOT NULL,
    method   TEXT   NOT NULL,
    ip       TEXT   NULL,
    user_id  TEXT   NULL,
    resource TEXT   NULL
);

-- Time-range reads and retention purges.
CREATE INDEX audit_log_at ON audit_log (at);
