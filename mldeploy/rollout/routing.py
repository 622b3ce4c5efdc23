"""Which version answers a request for a model, and what each answer counts.

A resource of the ``/predict`` family is handed a *served model* where it used to be handed the
Modeler: it asks it for ``infer(rows)``, ``features`` and ``ensure_ready()`` exactly as before,
so ``/predict``, ``/models/<name>/predict`` and ``/v2/models/<name>/infer`` keep one code path.

- :class:`PinnedModel` answers from one saved version (``/models/<name>/versions/<v>/...``).
- :class:`RoutedModel` answers from the current version, or, while the model has an active
  rollout, lets the rollout decide: a canary sends ``percent`` of the requests to the candidate
  (sticky per ``X-Request-Key``, else drawn per request); a shadow answers from the current
  version and hands a copy to the candidate once the answer went out.

A candidate that fails (anything but the client's bad input) is counted as an error of the
candidate and the request is answered by the current version instead: a broken candidate costs
its rollout, never a client's request. Past ``MLDEPLOY_ROLLOUT_ERROR_LIMIT`` the rollout aborts
itself.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flask import after_this_request, has_request_context, request

from mldeploy.http import metrics, request_context
from mldeploy.rollout import control, counters
from mldeploy.rollout.control import BASELINE, CANDIDATE
from mldeploy.rollout.counters import SharedCounters, latency_bucket
from mldeploy.rollout.registry import ModelRegistry
from mldeploy.rollout.shadow import AfterAnswerBuffer, Copy, joined_rows
from mldeploy.rollout.state import PROMOTED, SHADOW, Rollout, RolloutConflict, RolloutFollower, epoch_seconds
from modeler.errors import InvalidInput

if TYPE_CHECKING:
    from mldeploy.settings import Settings
    from modeler.inference import Inference
    from modeler.loaded_model import LoadedModel
    from modeler.modeler import Modeler
    from modeler.predictors.base import Predictor

log = logging.getLogger(__name__)

REQUEST_KEY_HEADER = "X-Request-Key"
# Who answered, as the metrics and the log line say it.
CURRENT, PINNED, CANDIDATE_ROLE = "current", "pinned", "candidate"


def note_answer(model: str, version: str, role: str) -> None:
    """Count the answer per model, version and role, and name the model on the request's log line."""
    metrics.count_model_answer(model, version, role)
    request_context.note_model(model, role)


class ServedModel:
    """One model as a resource of the /predict family sees it (in place of the Modeler)."""

    def __init__(self, name: str, modeler: Modeler) -> None:
        self.name = name
        self.modeler = modeler

    def ensure_ready(self) -> LoadedModel:
        """The version this model answers from (loaded)."""
        return self.modeler.ensure_ready()

    @property
    def is_ready(self) -> bool:
        """Whether a version is loaded."""
        return self.modeler.is_ready

    @property
    def features(self) -> tuple[str, ...]:
        """The model's input fields, in order."""
        return self.ensure_ready().features

    @property
    def version(self) -> str:
        """The id of the version this model answers from."""
        return self.ensure_ready().version

    def infer(self, x: object) -> Inference:
        """Validate and answer ``x`` (the Modeler's :meth:`~modeler.modeler.Modeler.infer`)."""
        result = self.modeler.infer(x)
        note_answer(self.name, result.version, CURRENT)
        return result


class PinnedModel(ServedModel):
    """A model answering from one saved version, current or not."""

    def __init__(self, name: str, modeler: Modeler, model: LoadedModel) -> None:
        super().__init__(name, modeler)
        self.model = model

    def ensure_ready(self) -> LoadedModel:
        return self.model

    @property
    def is_ready(self) -> bool:
        return True

    def infer(self, x: object) -> Inference:
        result = self.modeler.infer(x, model=self.model)
        note_answer(self.name, result.version, PINNED)
        return result


def after_answer(copy: Copy, jobs: AfterAnswerBuffer, dropped: Callable[[], None]) -> None:
    """Hand ``copy`` to the after-answer buffer once the server closed the response (right away
    outside a request); ``dropped`` counts a copy the full buffer refused."""

    def submit() -> None:
        if not jobs.submit(copy):
            dropped()

    if not has_request_context():
        submit()
        return

    @after_this_request
    def on_close(response):
        response.call_on_close(submit)
        return response


class ModelRollout:
    """One model's rollout as this process follows it: the state, the shared counters, the
    automatic abort."""

    def __init__(self, name: str, modeler: Modeler, settings: Settings, registry: ModelRegistry) -> None:
        self.name = name
        self.modeler = modeler
        self.folder = Path(modeler.model_dir)
        self.registry = registry
        self.error_limit = settings.rollout_error_limit
        self.min_requests = settings.rollout_min_requests
        self.follower = RolloutFollower(self.folder, settings.poll_interval)
        self.counters = SharedCounters(self.folder, after_flush=self.check_errors)

    def candidate(self, rollout: Rollout) -> LoadedModel:
        """The rollout's candidate version, loaded (and kept in the pinned cache)."""
        return self.registry.pinned.get(self.name, rollout.candidate, self.modeler)

    def record(self, rollout: Rollout, arm: str, labels: list, seconds: float, **more: float) -> None:
        """Count one answer of ``arm``: the request, its rows, its latency and its classes."""
        if len(labels) == 1:  # the common request: no Counter (it costs more than the prediction)
            counts: dict[str, float] = {counters.CLASS_PREFIX + str(labels[0]): 1}
        else:
            counts = collections.Counter(counters.CLASS_PREFIX + str(label) for label in labels)
        counts[counters.REQUESTS] = 1
        counts[counters.ROWS] = len(labels)
        counts[counters.LATENCY_PREFIX + str(latency_bucket(seconds))] = 1
        counts.update(more)
        self.counters.add(rollout.id, arm, counts)

    def check_errors(self) -> None:
        """After each flush: abort the active rollout when its candidate's error rate passed the limit."""
        rollout = self.follower.current()
        if rollout is None or not rollout.active:
            return
        found = self.counters.totals(rollout.id).get(CANDIDATE, {})
        requests, errors = found.get(counters.REQUESTS, 0), found.get(counters.ERRORS, 0)
        if requests >= self.min_requests and errors / requests > self.error_limit:
            reason = (
                f"automatic: the candidate's error rate {errors / requests:.1%} over {int(requests)} requests "
                f"passed the limit {self.error_limit:.1%} (MLDEPLOY_ROLLOUT_ERROR_LIMIT)"
            )
            with contextlib.suppress(RolloutConflict):  # another process ended it first
                control.abort(self.folder, self.name, reason, rollout_id=rollout.id)
            self.follower.refresh()


class RoutedModel(ServedModel):
    """A model as its unpinned routes serve it: the current version, split by its rollout."""

    def __init__(self, name: str, modeler: Modeler, rollout: ModelRollout, jobs: AfterAnswerBuffer) -> None:
        super().__init__(name, modeler)
        self.rollout = rollout
        self.jobs = jobs

    def infer(self, x: object) -> Inference:
        rollout = self.rollout.follower.current()
        if rollout is None or not rollout.active:
            if rollout is not None and rollout.state == PROMOTED:
                return self._promoted(rollout, x)
            return super().infer(x)
        if rollout.mode == SHADOW:
            return self._shadowed(rollout, x)
        if self._to_candidate(rollout):
            result = self._from_candidate(rollout, x)
            if result is not None:
                return result
        return self._from_baseline(rollout, x)

    def _promoted(self, rollout: Rollout, x: object) -> Inference:
        """Right after a promotion this process may not have followed the pointer yet: the
        promoted version answers all the same, for at most two poll intervals after this process
        saw the promotion, and never past two poll intervals after the promotion itself (by the
        shared record's clock, plus its one-second rounding). By then the pointer is followed,
        and a later activation rules: a worker that sat idle through the promotion and sees it
        only after an activation by hand must not answer from the promoted version."""
        follower = self.rollout.follower
        grace = 2 * follower.poll_interval
        # Every request comes here for as long as the last rollout is a promotion: the cheapest
        # test first, the one that settles it once the grace is over.
        if time.monotonic() > follower.seen_at + grace:
            return super().infer(x)
        promoted_at = epoch_seconds(rollout.ended_at) if rollout.ended_at else 0.0
        if time.time() > promoted_at + 1.0 + grace or self.modeler.ensure_ready().version == rollout.candidate:
            return super().infer(x)
        result = self.modeler.infer(x, model=self.rollout.candidate(rollout))
        note_answer(self.name, result.version, CURRENT)
        return result

    def _to_candidate(self, rollout: Rollout) -> bool:
        key = request.headers.get(REQUEST_KEY_HEADER) if has_request_context() else None
        if key:  # sticky: the same key lands on the same side for the whole rollout
            digest = hashlib.blake2b(f"{rollout.id}:{key}".encode(), digest_size=8).digest()
            draw = int.from_bytes(digest, "big") / 2**64 * 100
        else:
            draw = random.random() * 100
        return draw < rollout.percent

    def _from_baseline(self, rollout: Rollout, x: object) -> Inference:
        started = time.perf_counter()
        try:
            result = self.modeler.infer(x)
        except InvalidInput:
            raise
        except Exception:
            self.rollout.counters.add(rollout.id, BASELINE, {counters.REQUESTS: 1, counters.ERRORS: 1})
            raise
        self.rollout.record(rollout, BASELINE, result.labels, time.perf_counter() - started)
        note_answer(self.name, result.version, CURRENT)
        return result

    def _from_candidate(self, rollout: Rollout, x: object) -> Inference | None:
        """The candidate's answer, or None when it failed (counted; the baseline answers)."""
        started = time.perf_counter()
        try:
            result = self.modeler.infer(x, model=self.rollout.candidate(rollout))
        except InvalidInput:
            raise
        except Exception:
            log.exception("candidate %s of model %s failed; the current version answers", rollout.candidate, self.name)
            self.rollout.counters.add(rollout.id, CANDIDATE, {counters.REQUESTS: 1, counters.ERRORS: 1})
            return None
        self.rollout.record(rollout, CANDIDATE, result.labels, time.perf_counter() - started)
        note_answer(self.name, result.version, CANDIDATE_ROLE)
        # Agreement on the same rows: the baseline answers them too, after the answer went out.
        self._after_answer(rollout, self._compare, result)
        return result

    def _shadowed(self, rollout: Rollout, x: object) -> Inference:
        result = self._from_baseline(rollout, x)
        self._after_answer(rollout, self._shadow, result)
        return result

    def _after_answer(self, rollout: Rollout, handler: Callable[[list[Copy]], None], answered: Inference) -> None:
        copy = Copy(handler, rollout.id, rollout, answered.rows, answered.labels, answered.single)
        after_answer(copy, self.jobs, lambda: self.rollout.counters.add(rollout.id, CANDIDATE, {counters.DROPPED: 1}))

    def _shadow(self, copies: list[Copy]) -> None:
        """The candidate answers a batch of copies; its answers are counted, never returned.
        It answers the rows the primary validated (the two take the same fields: the rollout's
        start checks it), so a copy costs the candidate's prediction and no second validation.
        Its latency is sampled: the batch's first copy is answered alone and timed (a batch's
        time is no request's latency), the others in one call."""
        rollout: Rollout = copies[0].context
        candidate = self.rollout.candidate(rollout).predictor
        first, rest = copies[0], copies[1:]
        started = time.perf_counter()
        try:
            labels = candidate.answer(first.rows, single=first.single).labels()
        except Exception:
            self.rollout.counters.add(rollout.id, CANDIDATE, {counters.REQUESTS: 1, counters.ERRORS: 1})
            labels = None
        seconds = time.perf_counter() - started
        answered = [(first, labels)] if labels is not None else []
        answered += self._answer_all(candidate, rest, rollout)
        if not answered:
            return
        all_labels = [label for _, found in answered for label in found]
        counts: collections.Counter[str] = collections.Counter(counters.CLASS_PREFIX + str(x) for x in all_labels)
        counts[counters.REQUESTS] = len(answered)
        counts[counters.ROWS] = len(all_labels)
        counts[counters.COMPARED] = len(all_labels)
        counts[counters.AGREED] = agreed_rows(answered)
        if labels is not None:
            counts[counters.LATENCY_PREFIX + str(latency_bucket(seconds))] = 1
        self.rollout.counters.add(rollout.id, CANDIDATE, counts)

    def _compare(self, copies: list[Copy]) -> None:
        """Agreement of a batch of the candidate's answers with the baseline's on the same rows."""
        rollout: Rollout = copies[0].context
        try:
            baseline = self.modeler.ensure_ready().predictor
        except Exception:
            return  # the baseline's own failures are counted where it answers
        answered = self._answer_all(baseline, copies, rollout, count_errors=False)
        self.rollout.counters.add(
            rollout.id,
            CANDIDATE,
            {counters.COMPARED: sum(len(found) for _, found in answered), counters.AGREED: agreed_rows(answered)},
        )

    def _answer_all(
        self, predictor: Predictor, copies: list[Copy], rollout: Rollout, *, count_errors: bool = True
    ) -> list[tuple[Copy, list]]:
        """``predictor``'s labels for every copy's rows: one call for the whole batch, or, when
        their rows cannot be joined or the call fails, one call per copy (a copy that fails is
        counted as the candidate's error when ``count_errors``)."""
        if not copies:
            return []
        rows = joined_rows(copies) if len(copies) > 1 else None
        if rows is not None:
            try:
                labels = list(predictor.answer(rows, single=False).labels())
            except Exception:
                labels = None
            if labels is not None and len(labels) == sum(len(copy.labels) for copy in copies):
                found, start = [], 0
                for copy in copies:
                    found.append((copy, labels[start : start + len(copy.labels)]))
                    start += len(copy.labels)
                return found
        found = []
        for copy in copies:
            try:
                found.append((copy, list(predictor.answer(copy.rows, single=copy.single).labels())))
            except Exception:
                if count_errors:
                    self.rollout.counters.add(rollout.id, CANDIDATE, {counters.REQUESTS: 1, counters.ERRORS: 1})
        return found


def agreed_rows(answered: list[tuple[Copy, list]]) -> int:
    """Rows on which the labels found agree with the copy's own answer."""
    return sum(a == b for copy, found in answered for a, b in zip(copy.labels, found, strict=True))


class ServedModels:
    """Every model of the server as its routes serve it: by name (split by rollouts), or pinned to
    a version. One per app; each process follows the shared state by itself."""

    def __init__(self, settings: Settings, default: Modeler) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings, default)
        self.jobs = AfterAnswerBuffer(settings.shadow_queue)
        self._routed: dict[str, RoutedModel] = {}
        self._lock = threading.Lock()

    @property
    def default_name(self) -> str:
        """The default model's name (``MLDEPLOY_MODEL_NAME``), the one /predict answers for."""
        return self.registry.default_name

    def names(self) -> list[str]:
        """Every model's name, the default first."""
        return self.registry.names()

    def routed(self, name: str | None = None) -> RoutedModel:
        """Model ``name`` (None: the default) as its unpinned routes serve it; 404 when unknown."""
        name = self.default_name if name is None else name
        served = self._routed.get(name)
        if served is not None:
            return served
        modeler = self.registry.get(name)
        with self._lock:
            served = self._routed.get(name)
            if served is None:
                rollout = ModelRollout(name, modeler, self.settings, self.registry)
                served = self._routed[name] = RoutedModel(name, modeler, rollout, self.jobs)
        return served

    def pinned(self, name: str, version: str) -> PinnedModel:
        """Model ``name`` answering from saved version ``version``; 404 naming an unknown one."""
        modeler = self.registry.get(name)
        return PinnedModel(name, modeler, self.registry.version(name, version))

    def rollout_of(self, name: str) -> ModelRollout:
        """Model ``name``'s rollout as this process follows it."""
        return self.routed(name).rollout
