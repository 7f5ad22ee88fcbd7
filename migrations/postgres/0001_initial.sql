-- Times are Unix milliseconds (UTC) in BIGINT columns, identical on both backends.
CREATE TABLE calls (
    id            BIGSERIAL PRIMARY KEY,
    transport     TEXT    NOT NULL,
    external_id   TEXT    NOT NULL,
    from_number   TEXT    NOT NULL,
    to_number     TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    answered_at   BIGINT,
    ended_at      BIGINT,
    end_reason    TEXT,
    carrier_status TEXT,
    node          TEXT    NOT NULL
);
CREATE INDEX calls_external_id ON calls (external_id);
CREATE INDEX calls_started_at ON calls (started_at);

CREATE TABLE transcript_turns (
    call_id     BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    speaker     TEXT   NOT NULL,
    text        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    start_ms    BIGINT,
    end_ms      BIGINT,
    confidence  DOUBLE PRECISION,
    heard_chars BIGINT,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_events (
    id      BIGSERIAL PRIMARY KEY,
    call_id BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    detail  TEXT   NOT NULL
);
CREATE INDEX call_events_call ON call_events (call_id);

CREATE TABLE tasks (
    id             BIGSERIAL PRIMARY KEY,
    reference      TEXT UNIQUE,
    call_id        BIGINT REFERENCES calls (id) ON DELETE SET NULL,
    status         TEXT   NOT NULL,
    category       TEXT,
    issue          TEXT,
    location       TEXT,
    requested_time TEXT,
    requested_at   BIGINT,
    urgency        TEXT   NOT NULL,
    caller_name    TEXT,
    caller_number  TEXT,
    confidence     DOUBLE PRECISION NOT NULL,
    summary        TEXT,
    assignee       TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    closed_at      BIGINT
);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_call ON tasks (call_id);
CREATE INDEX tasks_created ON tasks (created_at);

CREATE TABLE task_events (
    id         BIGSERIAL PRIMARY KEY,
    task_id    BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    field      TEXT   NOT NULL,
    from_value TEXT,
    to_value   TEXT,
    note       TEXT
);
CREATE INDEX task_events_task ON task_events (task_id);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT   NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_pending ON outbox (sent_at, next_attempt_at);
