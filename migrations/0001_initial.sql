-- 0001: the whole first schema. Times are UNIX seconds (REAL, UTC); token counts are tiktoken tokens.

-- Per-server options set by admins (/config set). NULL = use the process default from Settings.
CREATE TABLE guild_config (
    guild_id                    INTEGER PRIMARY KEY,
    model                       TEXT,
    temperature                 REAL,
    max_tokens                  INTEGER,
    turn_mode                   TEXT,
    turn_window_seconds         REAL,
    allowed_channel_ids         TEXT,    -- JSON list of ints
    ignored_prefixes            TEXT,    -- JSON list of strings
    guild_daily_token_budget    INTEGER,
    player_daily_token_budget   INTEGER,
    dm_style                    TEXT,
    content_rating              TEXT,
    updated_at                  REAL NOT NULL,
    updated_by                  INTEGER
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER,
    channel_id  INTEGER NOT NULL,
    title       TEXT NOT NULL,
    setting     TEXT NOT NULL DEFAULT '',
    tone        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('active', 'paused', 'ended')),
    created_by  INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    ended_at    REAL,
    turn        INTEGER NOT NULL DEFAULT 0
);
-- At most one live (active or paused) campaign per channel.
CREATE UNIQUE INDEX campaigns_one_live_per_channel ON campaigns (channel_id) WHERE status != 'ended';
CREATE INDEX campaigns_guild ON campaigns (guild_id);

CREATE TABLE characters (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    player_id    INTEGER NOT NULL,
    player_name  TEXT NOT NULL,
    name         TEXT NOT NULL,
    char_class   TEXT NOT NULL,
    ancestry     TEXT NOT NULL,
    backstory    TEXT NOT NULL DEFAULT '',
    level        INTEGER NOT NULL DEFAULT 1,
    hp           INTEGER NOT NULL DEFAULT 10,
    max_hp       INTEGER NOT NULL DEFAULT 10,
    ac           INTEGER NOT NULL DEFAULT 10,
    conditions   TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    inventory    TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    notes        TEXT NOT NULL DEFAULT '',
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   REAL NOT NULL
);
-- One active character per player per campaign; character names unique among the active party.
CREATE UNIQUE INDEX characters_one_per_player ON characters (campaign_id, player_id) WHERE active = 1;
CREATE UNIQUE INDEX characters_unique_name ON characters (campaign_id, name COLLATE NOCASE) WHERE active = 1;

-- Every message of the story. Player actions are inserted as 'pending' BEFORE the model is called.
CREATE TABLE story_messages (
    id                   INTEGER PRIMARY KEY,
    campaign_id          INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    turn                 INTEGER NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('player', 'dm', 'system')),
    author_id            INTEGER,
    author_name          TEXT NOT NULL,
    character_name       TEXT,
    content              TEXT NOT NULL,
    token_count          INTEGER NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'undone')),
    created_at           REAL NOT NULL,
    platform_message_id  INTEGER,
    summarized           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX story_messages_campaign ON story_messages (campaign_id, id);
CREATE INDEX story_messages_pending ON story_messages (campaign_id) WHERE state = 'pending';
CREATE UNIQUE INDEX story_messages_platform ON story_messages (campaign_id, platform_message_id)
    WHERE platform_message_id IS NOT NULL;

-- The running summary (one row per campaign, replaced on every fold).
CREATE TABLE summaries (
    campaign_id         INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    content             TEXT NOT NULL,
    token_count         INTEGER NOT NULL,
    through_message_id  INTEGER NOT NULL,
    updated_at          REAL NOT NULL
);

CREATE TABLE dice_rolls (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER REFERENCES campaigns (id) ON DELETE CASCADE,
    turn            INTEGER,
    roller_id       INTEGER,
    roller_name     TEXT NOT NULL,
    character_name  TEXT,
    expression      TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    total           INTEGER NOT NULL,
    breakdown       TEXT NOT NULL,
    by_dm           INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL
);
CREATE INDEX dice_rolls_campaign ON dice_rolls (campaign_id, id);

-- One row per model call: tokens, US dollars (NULL when the model has no known price).
CREATE TABLE model_usage (
    id                    INTEGER PRIMARY KEY,
    call_id               TEXT NOT NULL, -- one model call; several rows when split across players
    guild_id              INTEGER,
    campaign_id           INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    player_id             INTEGER,      -- the player whose action caused the call, if one did
    purpose               TEXT NOT NULL, -- 'turn', 'summary', 'retry', ...
    model                 TEXT NOT NULL,
    prompt_tokens         INTEGER NOT NULL,
    completion_tokens     INTEGER NOT NULL,
    cached_prompt_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd              REAL,
    day                   TEXT NOT NULL, -- UTC date 'YYYY-MM-DD', for daily budgets
    created_at            REAL NOT NULL
);
CREATE INDEX model_usage_guild_day ON model_usage (guild_id, day);
CREATE INDEX model_usage_player_day ON model_usage (guild_id, player_id, day);
CREATE INDEX model_usage_campaign ON model_usage (campaign_id);
