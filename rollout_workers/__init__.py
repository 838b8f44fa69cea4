"""The rollout side of Revisor: generation engines (engine/), sequential-revision episodes
(episodes/: seed sources and the runner), where episodes live while played (env_pool), packed
weights and the RolloutWorker actor (worker). The types it shares with the learner and the
driver (trajectory format, engine interface, rollout settings) are in contracts/. Submodules
are imported on demand, so importing one never pulls in Ray or vLLM."""
