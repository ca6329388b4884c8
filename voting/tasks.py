"""Celery tasks of the voting app: thin adapters over voting.integrity."""

from __future__ import annotations

import logging

from celery import shared_task

from voting.integrity import fraud_sweep

log = logging.getLogger(__name__)


@shared_task(ignore_result=True, soft_time_limit=1200, time_limit=1300)
def fraud_sweep_task() -> str:
    """Returns a line on what the sweep did (recorded for operators: workers.schedule)."""
    result = fraud_sweep()
    if result.skipped:
        return "skipped: another sweep was running"
    if result.changed:
        log.warning(
            "fraud sweep: %d votes scanned, flagged voters %s, %d votes excluded, %d restored",
            result.scanned_votes,
            result.flagged_voters,
            len(result.excluded_votes),
            len(result.restored_votes),
        )
    return (
        f"{result.scanned_votes} votes scanned, {len(result.flagged_voters)} voters flagged, "
        f"{len(result.excluded_votes)} votes excluded, {len(result.restored_votes)} restored"
    )
