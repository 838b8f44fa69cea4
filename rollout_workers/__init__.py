"""The rollout side of Revisor: generation engines (engine/), sequential-revision episodes
(episodes/: seed sources, dialogue tokens, the runner, RolloutConfig), where episodes live
while played (env_pool), the trajectory format (trajectory) and the RolloutWorker actor
(worker). Submodules are imported on demand, so importing one never pulls in Ray or vLLM."""
