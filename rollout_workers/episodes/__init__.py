"""Sequential-revision episodes: where they come from (seeds), how their prompts grow
(dialogue), how they are played (runner), with which settings (config)."""
