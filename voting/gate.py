"""What a vote request must pass before the vote is written, cheapest check first.

Sign-in (when required) → rate limits → the battle is the requester's → proof of work → CAPTCHA (when
configured). Nothing is stored until all pass, and a refusal leaves the battle votable: the page fetches a
new challenge and tries again.
"""

from __future__ import annotations

from django.conf import settings

from arena.errors import NotAllowed, NotFound
from arena.models import Battle
from voting.captcha import captcha_verify
from voting.challenge import challenge_verify
from voting.limits import vote_rate_check
from voting.models import Voter


def vote_target_check(*, code: str, voter: Voter) -> None:
    """The same refusals vote_cast gives, early, so a stranger's vote never spends a challenge."""
    owner = Battle.objects.filter(code=code).values_list("voter_id", flat=True).first()
    if owner is None:
        raise NotFound("No battle with this code.")
    if owner != voter.id:
        raise NotAllowed("Only the person who started this battle can vote on it.")


def vote_gate(
    *, code: str, voter: Voter, ip: str | None, signed_in: bool, challenge: object, captcha: object
) -> None:
    if settings.ARENA_VOTE_LOGIN_REQUIRED and not signed_in:
        raise NotAllowed("Sign in to vote.")
    vote_rate_check(voter_id=voter.id, ip=ip)
    vote_target_check(code=code, voter=voter)
    challenge_verify(code=code, answer=challenge)
    captcha_verify(response=captcha, ip=ip)
