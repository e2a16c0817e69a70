-- 0003: world memory. The chronicle (one permanent chapter per memory fold), the lorebook with every
-- change kept, and full-text search (SQLite FTS5, bm25) over the story, the chapters and the lore.

CREATE TABLE chapters (
    id                  INTEGER PRIMARY KEY,
    campaign_id         INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number              INTEGER NOT NULL,
    first_turn          INTEGER NOT NULL,
    last_turn           INTEGER NOT NULL,
    through_message_id  INTEGER NOT NULL,
    started_at          REAL NOT NULL,
    ended_at            REAL NOT NULL,
    content             TEXT NOT NULL,
    token_count         INTEGER NOT NULL,
    created_at          REAL NOT NULL,
    UNIQUE (campaign_id, number)
);

CREATE TABLE lore_entries (
    id                INTEGER PRIMARY KEY,
    campaign_id       INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('npc', 'place', 'faction', 'item', 'quest', 'fact')),
    name              TEXT NOT NULL,
    aliases           TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    description       TEXT NOT NULL DEFAULT '',
    token_count       INTEGER NOT NULL DEFAULT 0,
    status            TEXT CHECK (status IN ('open', 'done', 'failed')),  -- quests only
    secret            INTEGER NOT NULL DEFAULT 0,
    pinned            INTEGER NOT NULL DEFAULT 0,
    created_by_kind   TEXT NOT NULL CHECK (created_by_kind IN ('dm', 'extract', 'player', 'admin')),
    created_by        INTEGER,
    created_turn      INTEGER NOT NULL DEFAULT 0,
    last_named_turn   INTEGER NOT NULL DEFAULT 0,
    edited_by_people  INTEGER NOT NULL DEFAULT 0,
    live              INTEGER NOT NULL DEFAULT 1,   -- 0: forgotten or undone (kept for its revisions)
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
-- Names are unique among a campaign's live entries (case-insensitive).
CREATE UNIQUE INDEX lore_entries_unique_name ON lore_entries (campaign_id, name COLLATE NOCASE) WHERE live = 1;
CREATE INDEX lore_entries_campaign ON lore_entries (campaign_id, live);

-- Every change of an entry: who, when, in which turn, and the entry as it was after the change.
CREATE TABLE lore_revisions (
    id           INTEGER PRIMARY KEY,
    entry_id     INTEGER NOT NULL REFERENCES lore_entries (id) ON DELETE CASCADE,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    turn         INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('create', 'update', 'forget', 'revert')),
    author_kind  TEXT NOT NULL CHECK (author_kind IN ('dm', 'extract', 'player', 'admin')),
    author_id    INTEGER,
    author_name  TEXT NOT NULL DEFAULT '',
    snapshot     TEXT,                              -- JSON of the entry after the change; NULL: forgotten
    undone       INTEGER NOT NULL DEFAULT 0,        -- 1: taken back by /undo of its turn
    created_at   REAL NOT NULL
);
CREATE INDEX lore_revisions_entry ON lore_revisions (entry_id, id);
CREATE INDEX lore_revisions_turn ON lore_revisions (campaign_id, turn);

-- Full-text indexes: external-content FTS5 tables kept in step by triggers. Which rows may be shown
-- (live story, non-secret lore) is decided at query time by joining the base table.
CREATE VIRTUAL TABLE story_fts USING fts5 (content, content = 'story_messages', content_rowid = 'id',
                                           tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER story_fts_insert AFTER INSERT ON story_messages BEGIN
    INSERT INTO story_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER story_fts_delete AFTER DELETE ON story_messages BEGIN
    INSERT INTO story_fts (story_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER story_fts_update AFTER UPDATE OF content ON story_messages BEGIN
    INSERT INTO story_fts (story_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO story_fts (rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO story_fts (story_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE chapters_fts USING fts5 (content, content = 'chapters', content_rowid = 'id',
                                              tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER chapters_fts_insert AFTER INSERT ON chapters BEGIN
    INSERT INTO chapters_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER chapters_fts_delete AFTER DELETE ON chapters BEGIN
    INSERT INTO chapters_fts (chapters_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;

CREATE VIRTUAL TABLE lore_fts USING fts5 (name, aliases, description, content = 'lore_entries',
                                          content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER lore_fts_insert AFTER INSERT ON lore_entries BEGIN
    INSERT INTO lore_fts (rowid, name, aliases, description) VALUES (new.id, new.name, new.aliases, new.description);
END;
CREATE TRIGGER lore_fts_delete AFTER DELETE ON lore_entries BEGIN
    INSERT INTO lore_fts (lore_fts, rowid, name, aliases, description)
        VALUES ('delete', old.id, old.name, old.aliases, old.description);
END;
CREATE TRIGGER lore_fts_update AFTER UPDATE OF name, aliases, description ON lore_entries BEGIN
    INSERT INTO lore_fts (lore_fts, rowid, name, aliases, description)
        VALUES ('delete', old.id, old.name, old.aliases, old.description);
    INSERT INTO lore_fts (rowid, name, aliases, description) VALUES (new.id, new.name, new.aliases, new.description);
END;
