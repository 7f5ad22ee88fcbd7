-- One row per answered caller turn: how long each stage took, measured from
-- the end of the caller's speech. NULL where a stage did not happen.
CREATE TABLE turn_latencies (
    id             BIGSERIAL PRIMARY KEY,
    call_id        BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    turn           BIGINT NOT NULL,
    at             BIGINT NOT NULL,
    stt_ms         BIGINT,
    intent_ms      BIGINT,
    tts_ms         BIGINT,
    first_frame_ms BIGINT,
    stt_engine     TEXT,
    intent_engine  TEXT,
    tts_engine     TEXT
);
CREATE INDEX turn_latencies_call ON turn_latencies (call_id);
CREATE INDEX turn_latencies_at ON turn_latencies (at);

-- A voice message the caller left when the speech engines were down: the
-- WAV file's path, relative to the recordings directory.
ALTER TABLE tasks ADD COLUMN recording TEXT;
