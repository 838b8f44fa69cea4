"""Where a process serves its metrics: a setting every actor is handed (in its rollout or
learner settings), so it is a contract; the machinery that serves them is telemetry/'s."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsConfig(BaseModel):
    """Where a process serves its metrics. The default is loopback on a free port: safe on a
    shared machine, and the only choice that works with several actors on one node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    """Interface to bind. On a multi-node cluster use "0.0.0.0" so that Prometheus on the head
    node can scrape workers; the address advertised is then the node's IP."""
    port: int = Field(0, ge=0, le=65535)
    """0 picks a free port per process; a fixed port suits a single process (the driver)."""
