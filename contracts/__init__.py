"""The types that cross a process boundary, so that every side imports them from here and
none imports another side's internals: the episode interface and the verifier's verdict
(episode, verdict: pure Python, what envs/ and verifier/ build on), the unit of work
(episode_spec), the engine interface and settings (engine, engine_config), rollout settings
(rollout_config), how a dialogue becomes tokens (dialogue), the trajectory format and batch
metadata (trajectory), vision inputs built the same way by engines and the learner
(multimodal), the packed form a weight publication travels in, rank 0's export and the
publication itself (packed_weights) and the metrics machinery every process serves
(telemetry). Submodules are imported on demand: importing one never pulls in
torch, vLLM or Ray unless that module needs it."""
