"""Content checks for prompts and answers: word and pattern lists, a local classifier, an external API.

`content_check(text)` runs the configured layers cheapest first and stops at the first that flags, so a
prompt with a blocked word never pays for a model call. Every layer is optional (see the "Content
moderation" settings). Models are loaded on first use and kept for the life of the process; torch and
transformers are imported only when a model path is configured, so the web process stays light otherwise.

A layer that fails (the API is down, a model cannot run) lets the text through with a logged warning,
unless ARENA_MODERATION_FAIL_CLOSED is set: then it raises ModerationUnavailable.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Fast tokenizers raise "Already borrowed" when two threads use one at the same time, and ASGI serves sync
# views from a thread pool: one lock per loaded model keeps the calls in turn.
_model_locks: dict[str, threading.Lock] = {}
_model_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


CLEAN = Verdict(False)


class ModerationUnavailable(Exception):
    """A configured check could not run and the operator chose to fail closed."""


def normalise(text: str) -> str:
    """Fold case and width variants (full-width letters), so look-alike spellings meet the same rule."""
    return unicodedata.normalize("NFKC", text).casefold()


_SPACES = r"\s+"


@functools.lru_cache(maxsize=8)
def _lexicon(terms: tuple[str, ...], patterns: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    rules = []
    for term in terms:
        words = [re.escape(w) for w in normalise(term).split()]
        if words:
            # Whole words only: a blocked "ass" must not refuse "class"; any run of spaces between words.
            rules.append(
                (f'contains the blocked term "{term}"', re.compile(rf"(?<!\w){_SPACES.join(words)}(?!\w)"))
            )
    for number, pattern in enumerate(patterns, start=1):
        rules.append((f"matches blocked pattern #{number}", re.compile(pattern, re.IGNORECASE)))
    return rules


def lexical_reasons(text: str) -> list[str]:
    rules = _lexicon(tuple(settings.ARENA_BLOCKED_TERMS), tuple(settings.ARENA_BLOCKED_PATTERNS))
    if not rules:
        return []
    folded = normalise(text)
    return [reason for reason, rule in rules if rule.search(folded)]


def _fail(layer: str, exc: BaseException) -> list[str]:
    if settings.ARENA_MODERATION_FAIL_CLOSED:
        raise ModerationUnavailable(f"The {layer} is unavailable right now. Please try again later.") from exc
    logger.warning("%s failed, letting the text through: %s", layer, exc)
    return []


def _model_lock(key: str) -> threading.Lock:
    with _model_locks_guard:
        return _model_locks.setdefault(key, threading.Lock())


def _labels_check(pipe: Any, flagged: Sequence[str], path: str) -> None:
    """A model whose labels include none of the flagged ones would never flag anything: say so at load."""
    labels = {str(label).casefold() for label in pipe.model.config.id2label.values()}
    if not labels & {label.casefold() for label in flagged}:
        raise ImproperlyConfigured(
            f"the moderation model at {path} has labels {sorted(labels)}, none of the flagged labels "
            f"{sorted(flagged)}; set the matching *_FLAGGED_LABELS setting"
        )


@functools.lru_cache(maxsize=4)
def _pipeline(task: str, path: str, device: str) -> Any:
    from transformers import pipeline

    if not Path(path).is_dir():
        raise ImproperlyConfigured(f"moderation model path {path} is not a directory")
    logger.info("loading %s model from %s", task, path)
    return pipeline(task, model=path, device=device)


def text_classifier() -> Any | None:
    path = settings.ARENA_MODERATION_MODEL_PATH
    if not path:
        return None
    pipe = _pipeline("text-classification", path, settings.ARENA_MODERATION_DEVICE)
    _labels_check(pipe, settings.ARENA_MODERATION_FLAGGED_LABELS, path)
    return pipe


def _windows(text: str, size: int) -> list[str]:
    """Overlapping slices, so a long prompt's tail is read too and a phrase across a cut is seen whole."""
    step = max(size - size // 10, 1)
    return [text[i : i + size] for i in range(0, max(len(text) - size // 10, 1), step)] or [text]


def _scores_flagged(
    results: list[list[dict[str, Any]]], flagged: Sequence[str], threshold: float
) -> dict[str, float]:
    """The highest score of each flagged label over all windows, for labels at or above the threshold."""
    wanted = {label.casefold() for label in flagged}
    worst: dict[str, float] = {}
    for window in results:
        for item in window:
            label, score = str(item["label"]), float(item["score"])
            if label.casefold() in wanted and score >= threshold:
                worst[label] = max(score, worst.get(label, 0.0))
    return worst


def classifier_reasons(text: str) -> list[str]:
    try:
        pipe = text_classifier()
        if pipe is None:
            return []
        windows = _windows(text, settings.ARENA_MODERATION_WINDOW_CHARS)
        with _model_lock(f"text:{settings.ARENA_MODERATION_MODEL_PATH}"):
            results = pipe(windows, top_k=None, truncation=True)
    except ImproperlyConfigured:
        raise
    except Exception as exc:  # a model can fail in many ways; each one is the same outage to the caller
        return _fail("content classifier", exc)
    scores = _scores_flagged(
        results, settings.ARENA_MODERATION_FLAGGED_LABELS, settings.ARENA_MODERATION_THRESHOLD
    )
    return [f"classified as {label} ({score:.2f})" for label, score in sorted(scores.items())]


def _api_results(text: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"input": text}
    if settings.ARENA_MODERATION_API_MODEL:
        body["model"] = settings.ARENA_MODERATION_API_MODEL
    key = settings.ARENA_MODERATION_API_KEY
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        settings.ARENA_MODERATION_API_URL,
        json=body,
        headers=headers,
        timeout=settings.ARENA_MODERATION_API_TIMEOUT,
    )
    response.raise_for_status()
    results = response.json().get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("flagged"), bool) for r in results
    ):
        raise ValueError("the moderation API answered without a results list of {flagged: bool}")
    return results


def api_reasons(text: str) -> list[str]:
    if not settings.ARENA_MODERATION_API_URL:
        return []
    try:
        results = _api_results(text)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        # The exception text may carry the request URL, never the key: the key travels in a header.
        return _fail("moderation service", exc)
    reasons = []
    for result in results:
        if result["flagged"]:
            categories = result.get("categories")
            named = sorted(k for k, v in categories.items() if v) if isinstance(categories, dict) else []
            reasons.append(f"flagged by the moderation service ({', '.join(named) or 'no category given'})")
    return reasons


def content_check(text: str) -> Verdict:
    """Check a prompt or an answer. Raises ModerationUnavailable only when failing closed."""
    for layer in (lexical_reasons, classifier_reasons, api_reasons):
        reasons = layer(text)
        if reasons:
            return Verdict(True, tuple(reasons))
    return CLEAN


def output_check(text: str) -> Verdict:
    """Check a finished answer; never raises, so a moderation fault cannot leave a generation half-written.

    Failing closed hides the answer (and leaves its vote uncounted) rather than showing it unchecked.
    """
    try:
        return content_check(text)
    except ModerationUnavailable as exc:
        return Verdict(True, (f"the content check could not run ({exc})",))
    except ImproperlyConfigured as exc:
        logger.error("content check misconfigured: %s", exc)
        if settings.ARENA_MODERATION_FAIL_CLOSED:
            return Verdict(True, ("the content check is misconfigured",))
        return CLEAN


def image_classifier() -> Any | None:
    path = settings.ARENA_MODERATION_IMAGE_MODEL_PATH
    if not path:
        return None
    pipe = _pipeline("image-classification", path, settings.ARENA_MODERATION_DEVICE)
    _labels_check(pipe, settings.ARENA_MODERATION_IMAGE_FLAGGED_LABELS, path)
    return pipe


def image_check(image: str | Path | Any) -> Verdict:
    """Check an image output (a file path or a PIL image) with the configured image classifier."""
    try:
        pipe = image_classifier()
        if pipe is None:
            return CLEAN
        source = str(image) if isinstance(image, Path) else image
        with _model_lock(f"image:{settings.ARENA_MODERATION_IMAGE_MODEL_PATH}"):
            results = pipe(source, top_k=None)
    except ImproperlyConfigured:
        raise
    except Exception as exc:
        _fail("image classifier", exc)
        return CLEAN
    scores = _scores_flagged(
        [results],
        settings.ARENA_MODERATION_IMAGE_FLAGGED_LABELS,
        settings.ARENA_MODERATION_IMAGE_THRESHOLD,
    )
    reasons = tuple(f"image classified as {label} ({score:.2f})" for label, score in sorted(scores.items()))
    return Verdict(bool(reasons), reasons)
