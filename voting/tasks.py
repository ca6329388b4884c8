"""Celery tasks of the voting app: thin adapters over voting.integrity."""

from __future__ import annotations

import logging

from celery import shared_task

from voting.integrity import fraud_sweep

log = logging.getLogger(__name__)


@shared_task(ignore_result=True, soft_time_limit=1200, time_limit=1300)
def fraud_sweep_task() -> None:
    result = fraud_sweep()
    if result.changed:
        log.warning(
            "fraud sweep: %d votes scanned, flagged voters %s, %d votes excluded, %d restored",
            result.scanned_votes,
            result.flagged_voters,
            len(result.excluded_votes),
            len(result.restored_votes),
        )
