-- An outbox row ends either sent (sent_at) or given up (dead_at); until then it
-- is pending. provider_ref keeps the provider's id for the message (Twilio SM…).
ALTER TABLE outbox ADD COLUMN dead_at BIGINT;
ALTER TABLE outbox ADD COLUMN provider_ref TEXT;
CREATE INDEX outbox_kind_due ON outbox (kind, next_attempt_at);
