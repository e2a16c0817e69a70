-- 0010: streamed narration. A server option to turn it off (NULL: the process default, STREAM_REPLIES),
-- and which model calls' token counts were counted by the bot (tiktoken) because the endpoint
-- reported none (a stream without a usage chunk, or one the output guard stopped early).

ALTER TABLE guild_config ADD COLUMN stream_replies INTEGER;
ALTER TABLE model_usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
