"""Why a vote is out of the count: one exclusion-reason prefix per mechanism, and audit target names.

A vote's `exclusion_reason` starts with exactly one prefix, so each mechanism undoes only its own
exclusions (unflagging restores what the flag left out, never an identity-leak void or a staff decision).
"""

from __future__ import annotations

from voting.models import Vote, Voter

FLAGGED = "voter flagged"
BANNED = "voter banned"
VOTE_TIME = "vote-time risk"
SWEEP = "fraud sweep"
# Exclusions the integrity machinery made: the sweep re-judges these votes (not leak voids or bans).
FRAUD_PREFIXES = (FLAGGED, VOTE_TIME, SWEEP)

# Audit target types follow the model label, as the other audited actions do ("arena.modelentry", ...).
VOTE_TARGET = Vote._meta.label_lower
VOTER_TARGET = Voter._meta.label_lower

REASON_MAX = Vote._meta.get_field("exclusion_reason").max_length or 300


def labelled(prefix: str, detail: str) -> str:
    return f"{prefix}: {detail}"[:REASON_MAX] if detail else prefix
