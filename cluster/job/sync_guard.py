"""The sync-divergence guard, the driver's half: are the workers sampling with the learner's weights?

Two signals, one response. Each worker stamps every batch it ships with the version and the
fingerprint of the weights it last loaded (weight_transport.fingerprint); a fingerprint that
differs from the one learner rank 0 published for that version means the worker loaded
something else (a load skipped, a buffer damaged on the way). And the learner measures, in its
scoring pass, how far the engines' log-probs of the freshly sampled tokens lie from its own
(learner.max_behaviour_gap): past the limit it refuses the batch (UpdateStats.skipped).

Either way the update is not trained on and the weights are published again once; when the
next update trips the guard again on episodes begun after that re-publication, the job ends
with one line naming the workers and the weight version (re-publishing did not help, so
training on would optimise against samples of some other policy). Every publication is
numbered (WeightPublication.publication) and every batch carries the number of the weights its
worker had loaded when it took the batch's first episode, the oldest its turns can have been
sampled under. Batches whose episodes began before the re-publication (they waited in the
queue, or were in play through it) are evidence of the first fault only: they are refused and
replayed again, and do not end the job.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.learner_messages import UpdateStats
from contracts.trajectory import BatchMeta

Reason = Literal["gap", "fingerprint"]


class GuardTrip(BaseModel):
    """One refused update: why, the weight version, the workers involved, and the evidence."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    version: int
    workers: list[str]
    publication: int
    """The newest BatchMeta.loaded_publication of its evidence."""
    detail: str
    """The evidence, in words (the gap against its limit, or the fingerprints compared)."""

    def line(self) -> str:
        """The one line a job that trips twice in a row ends with."""
        workers = ", ".join(self.workers) or "(none named)"
        return (f"rollout worker(s) {workers} do not sample with the learner's weights version "
                f"{self.version}: {self.detail}; publishing the weights again did not help "
                "(the sync-divergence guard, learner.max_behaviour_gap; see docs/cluster.md)")


class SyncGuard:
    """Rank 0's fingerprint of every published version, and the trips so far."""

    def __init__(self, gap_limits: tuple[float, float] | None) -> None:
        self.gap_limits = gap_limits
        """The learner's (mean, max) gap limits, for the words of a trip (None: guard off)."""
        self.fingerprints: dict[int, str] = {}
        self.last: GuardTrip | None = None
        """The trip of the previous update (None: it trained)."""
        self.trips = 0
        self.publications = 0
        """The newest publication's number (WeightPublication.publication): the driver numbers
        each publication, re-publications included, one past it."""
        self.retry_from = 0
        """The number of the re-publication that followed the last trip: evidence whose
        episodes began under older weights does not show the re-publication failed."""

    @property
    def enabled(self) -> bool:
        return self.gap_limits is not None

    def published(self, version: int, fingerprint: str | None, publication: int = 0) -> None:
        """Remember rank 0's fingerprint of `version` (re-publishing gives the same one) and
        the publication's number."""
        self.publications = max(self.publications, publication)
        if fingerprint is not None:
            self.fingerprints[version] = fingerprint

    def check_fingerprints(self, metas: list[BatchMeta]) -> GuardTrip | None:
        """A trip when a batch's weight stamp disagrees with rank 0 (checked before training)."""
        if not self.enabled:
            return None
        wrong = [m for m in metas if m.loaded_fingerprint is not None
                 and m.loaded_version in self.fingerprints
                 and m.loaded_fingerprint != self.fingerprints[m.loaded_version]]
        if not wrong:
            return None
        version = wrong[0].loaded_version
        return GuardTrip(
            reason="fingerprint", version=version, workers=sorted({m.worker for m in wrong}),
            publication=max(m.loaded_publication for m in wrong), detail=(f"weights fingerprint {wrong[0].loaded_fingerprint} where learner rank 0 "
                    f"published {self.fingerprints[version]}"))

    def check_gap(self, stats: UpdateStats, metas: list[BatchMeta]) -> GuardTrip | None:
        """A trip when the learner refused the batch for its log-prob gap; the workers named
        are those whose batches hold turns of the learner's current version."""
        if stats.skipped != "gap":
            return None
        version = stats.policy_version
        fresh = [m for m in metas if m.newest_version == version] or metas
        mean, top = self.gap_limits or (float("nan"), float("nan"))
        return GuardTrip(
            reason="gap", version=version, workers=sorted({m.worker for m in fresh}),
            publication=max((m.loaded_publication for m in fresh), default=0),
            detail=(f"their log-probs of the sampled tokens lie {stats.guard_gap:.3g} nats from "
                    f"the learner's on average (limit {mean:g}) and up to "
                    f"{stats.guard_gap_max:.3g} (limit {top:g})"))

    def record(self, trip: GuardTrip | None) -> GuardTrip | None:
        """Note this update's outcome; the trip before it when both tripped and this one's
        evidence began after the re-publication that followed it (end the job). The driver
        publishes again right after a trip that does not end the job."""
        previous, self.last = self.last, trip
        if trip is None:
            return None
        self.trips += 1
        if previous is not None and trip.publication >= self.retry_from:
            return previous
        self.retry_from = self.publications + 1
        return None
