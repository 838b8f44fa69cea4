"""The bottom layer: the types that cross a process boundary and their validation, so that
every side imports them from here and none imports another side's internals. It imports no
other Revisor package (tests/test_layering.py holds it to that, counting imports inside
functions) and holds no machinery of a side: the episode interface and the verifier's verdict
(episode, verdict: pure Python, what envs/ and verifier/ build on), the task settings (tasks)
and the unit of work that carries them (episode_spec), the engine interface, settings and
counters (engine, engine_config), rollout settings (rollout_config), where a process serves
its metrics (metrics), the trajectory format and batch metadata (trajectory), the packed form
a weight publication travels in, rank 0's export and the
publication itself (packed_weights), and the replies of the actors: learner ranks
(learner_messages), rollout workers and env actors (rollout_messages), the broker
(broker_messages). Submodules are imported on demand: importing one never pulls in torch, vLLM
or Ray unless that module needs it."""
