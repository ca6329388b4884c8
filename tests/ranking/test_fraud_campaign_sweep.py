"""The site's fraud sweep finds a boosting campaign through the database and names its model for staff."""

from __future__ import annotations

import pytest

from tests.voting.world import flagged_share, world, world_models, world_store
from voting.integrity import fraud_sweep
from voting.models import Vote, Voter


@pytest.mark.django_db
def test_the_sweep_flags_light_campaign_accounts_with_a_readable_reason() -> None:
    models = world_models()
    rows = world(seed=4, honest_voters=150, votes_each=40)
    honest = list(range(rows.next_voter))
    boosters = [rows.add(15, "booster", target=0) for _ in range(40)]
    voters = world_store(rows, models)
    result = fraud_sweep()
    flagged = Voter.objects.filter(id__in=[voters[b].id for b in boosters], flagged=True)
    members = [v for v in flagged if "boosting_campaign:m0" in v.flag_reasons]
    assert len(members) >= 0.3 * len(boosters)
    assert set(result.flagged_voters) >= {v.id for v in members}
    assert not Vote.objects.filter(voter__in=members, counted=True).exists()
    reason = Vote.objects.filter(voter=members[0]).first().exclusion_reason
    assert reason.startswith("voter flagged:") and "boosting_campaign:m0" in reason
    assert flagged_share(voters, honest) <= 0.05
