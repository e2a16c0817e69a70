-- 0009: a server option for combat: SRD monsters join with their listed average hit points instead
-- of hit points rolled from their hit dice (NULL: the process default, rolled).

ALTER TABLE guild_config ADD COLUMN average_monster_hp INTEGER;
