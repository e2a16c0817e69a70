-- 0013 (PostgreSQL, as SQLite): a pending action edited before the DM answered keeps its first text here (content holds the
-- text the DM answers); NULL for an action never edited.

ALTER TABLE story_messages ADD COLUMN first_content TEXT;
