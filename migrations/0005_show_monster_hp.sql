-- 0005: a server option for the combat tracker: show monsters' hit points as numbers (NULL: the
-- process default, which hides them and describes monsters as unhurt, hurt, bloodied or down).

ALTER TABLE guild_config ADD COLUMN show_monster_hp INTEGER;
