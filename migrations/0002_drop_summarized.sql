-- 0002: story_messages.summarized was written by every memory fold and never read: which messages a
-- summary covers is summaries.through_message_id. Dropped (SQLite 3.35+).
ALTER TABLE story_messages DROP COLUMN summarized;
