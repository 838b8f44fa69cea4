"""Sequential-revision episodes: where they come from (seeds) and how they are played (runner).
Their settings, dialogue tokens and specs are contracts (contracts.rollout_config,
contracts.dialogue, contracts.episode_spec)."""
