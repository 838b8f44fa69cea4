"""Generation engines: token ids in, sampled token ids and their log-probs out. The interface
they offer and their settings are contracts (contracts.engine, contracts.engine_config)."""

from rollout_workers.engine.factory import make_engine

__all__ = ["make_engine"]
