-- Whether we answered the call or placed it (an outbound callback).
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
