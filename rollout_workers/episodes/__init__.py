"""Sequential-revision episodes: where they come from (seeds) and how they are played (runner).
Their settings and specs are contracts (contracts.rollout_config, contracts.episode_spec); the
dialogue tokens are model_inputs.dialogue, shared with the learner."""
