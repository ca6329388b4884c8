"""Writes for voters and votes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from arena.errors import Conflict, InvalidInput, NotAllowed, NotFound
from arena.models import Battle, Generation, ModelEntry
from arena.selectors import battle_excluded_reason, models_version
from ranking.services import leaderboard_refresh_soon
from ranking.tallies import tally_record
from voting.categories import battle_categories, format_categories
from voting.identity import network_of, salted_hash
from voting.leak import generations_leak_find, leak_terms
from voting.metadata import conv_metadata
from voting.models import Vote, Voter
from voting.risk import vote_hold_audit, vote_risk_assess, vote_verdict


def voter_create(*, session_key: str, ip: str | None, user_id: int | None = None) -> Voter:
    return Voter.objects.create(
        session_hash=salted_hash(f"session:{session_key}"),
        ip_hash=salted_hash(f"ip:{ip}") if ip else "",
        network_hash=salted_hash(f"net:{network_of(ip)}") if ip else "",
        raw_ip=ip if ip and settings.ARENA_STORE_RAW_IP else None,
        user_id=user_id,
    )


def voter_resolve(*, voter_id: int | None, session_key: str, ip: str | None, user_id: int | None) -> Voter:
    """The session's voter; a signed-in user keeps one voter across sessions and devices."""
    if user_id is not None:
        voter = Voter.objects.filter(user_id=user_id).first()
        if voter is not None:
            return voter
    if voter_id is not None:
        voter = Voter.objects.filter(id=voter_id).first()
        if voter is not None and (voter.user_id is None or voter.user_id == user_id):
            if user_id is not None and voter.user_id is None:
                voter.user_id = user_id
                voter.save(update_fields=["user", "last_seen_at"])
            return voter
    return voter_create(session_key=session_key, ip=ip, user_id=user_id)


_identity_memo: dict[str, list[str]] = {}


def _identity_terms() -> list[str]:
    """Every name that would give a model away, remembered until any model changes (read on every vote)."""
    version = models_version()
    terms = _identity_memo.get(version)
    if terms is None:
        terms = _identity_terms_load()
        _identity_memo.clear()
        _identity_memo[version] = terms
    return terms


def _identity_terms_load() -> list[str]:
    names: list[str] = []
    for slug, name, org, config in ModelEntry.objects.values_list(
        "slug", "display_name", "organization", "backend_config"
    ):
        names += [slug, name, org]
        if isinstance(config, dict):
            names.append(str(config.get("model", "")))
            aliases = config.get("aliases", [])
            names += [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []
    return leak_terms(names)


@dataclass(frozen=True)
class VoteOrigin:
    """Where a vote came from, as salted hashes of the request (empty: fall back to the voter's own)."""

    ip_hash: str = ""
    network_hash: str = ""
    fingerprint_hash: str = ""


def vote_origin(*, ip: str | None, fingerprint: object = None) -> VoteOrigin:
    """Hash the request's address and the page's optional device fingerprint (any short text)."""
    fp = fingerprint if isinstance(fingerprint, str) and 0 < len(fingerprint) <= 256 else ""
    return VoteOrigin(
        ip_hash=salted_hash(f"ip:{ip}") if ip else "",
        network_hash=salted_hash(f"net:{network_of(ip)}") if ip else "",
        fingerprint_hash=salted_hash(f"fp:{fp}") if fp else "",
    )


def prompt_hash(text: str) -> str:
    """Case and spacing do not make a prompt new: repeated-prompt detection compares these."""
    return salted_hash("prompt:" + re.sub(r"\s+", " ", text.casefold()).strip())[:16]


def criteria_clean(value: object, *, modality: str) -> dict[str, str]:
    """Per-criterion choices as stored, or InvalidInput naming the bad criterion or choice."""
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("criteria must be an object like {\"geometry\": \"a\"}.")
    allowed = settings.ARENA_VOTE_CRITERIA.get(modality, [])
    cleaned: dict[str, str] = {}
    for key, choice in value.items():
        if key not in allowed:
            expected = ", ".join(allowed) if allowed else "none in this arena"
            raise InvalidInput(f"Unknown criterion {key!r}; expected {expected}.")
        if choice not in Vote.Choice.values:
            raise InvalidInput(
                f"Unknown choice {choice!r} for {key}; expected one of {', '.join(Vote.Choice.values)}."
            )
        cleaned[key] = str(choice)
    return cleaned


def vote_cast(
    *,
    code: str,
    voter: Voter,
    choice: object,
    origin: VoteOrigin | None = None,
    criteria: object = None,
) -> Vote:
    """Record the one vote on a battle. Locks the battle row, then the voter's (select_for_update), for the
    checks and the write: a flag or ban racing this vote either sees it or is seen by it."""
    if choice not in Vote.Choice.values:
        raise InvalidInput(f"Unknown choice {choice!r}; expected one of {', '.join(Vote.Choice.values)}.")
    if criteria not in (None, {}):
        modality = Battle.objects.filter(code=code).values_list("modality", flat=True).first()
        criteria = criteria_clean(criteria, modality=modality or "")
    try:
        with transaction.atomic():
            return _vote_write(
                code=code,
                voter=voter,
                choice=str(choice),
                origin=origin or VoteOrigin(),
                criteria=criteria or {},
            )
    except IntegrityError:
        # The unique battle constraint caught a race the lock did not (e.g. SQLite): one vote stands.
        raise Conflict("You already voted on this battle.") from None


def _vote_write(
    *, code: str, voter: Voter, choice: str, origin: VoteOrigin, criteria: dict[str, str]
) -> Vote:
    # Only the battle row is locked; its models come along for the answer's reveal.
    battle = (
        Battle.objects.select_for_update(of=("self",))
        .select_related("model_a", "model_b")
        .filter(code=code)
        .first()
    )
    if battle is None:
        raise NotFound("No battle with this code.")
    if battle.voter_id != voter.id:
        raise NotAllowed("Only the person who started this battle can vote on it.")
    if battle.status == Battle.Status.VOTED:
        raise Conflict("You already voted on this battle.")
    if battle.status == Battle.Status.GENERATING:
        raise Conflict("Wait until both answers are finished before voting.")
    if battle.status == Battle.Status.FAILED:
        raise Conflict("One side failed to answer, so this battle cannot be voted on. Start a new battle.")
    if battle.status == Battle.Status.SKIPPED:
        raise Conflict("You skipped this battle, so it cannot be voted on. Start a new battle.")
    generations = list(battle.generations.order_by("turn"))
    # The answers, and what metadata each side's stored file still carries (a PNG text chunk, glTF names).
    leak = generations_leak_find(generations, _identity_terms())
    # An answer hidden by the content filter voids the vote like a leak does: it is in the battle itself.
    excluded = battle_excluded_reason(battle, generations)
    fresh = Voter.objects.select_for_update().get(id=voter.id)
    now = timezone.now()
    seconds = (now - battle.ready_at).total_seconds() if battle.ready_at else None
    ip_hash = origin.ip_hash or fresh.ip_hash
    risk = vote_risk_assess(
        voter_id=fresh.id, ip_hash=ip_hash, choice=choice, seconds_to_vote=seconds, now=now
    )
    verdict = vote_verdict(voter=fresh, risk=risk, leak_reason=leak.reason if leak else excluded)
    vote = Vote.objects.create(
        battle=battle,
        voter=voter,
        choice=choice,
        seconds_to_vote=seconds,
        counted=verdict.counted,
        exclusion_reason=verdict.exclusion_reason,
        categories=_categories(battle, generations),
        criteria=criteria,
        conv_metadata=_metadata(battle, generations),
        ip_hash=ip_hash,
        network_hash=origin.network_hash or fresh.network_hash,
        fingerprint_hash=origin.fingerprint_hash or fresh.fingerprint_hash,
        prompt_hash=prompt_hash(battle.conversation[0]) if battle.conversation else "",
        risk_score=verdict.risk_score,
        risk_reasons=verdict.risk_reasons,
    )
    vote_hold_audit(vote)
    if origin.fingerprint_hash and origin.fingerprint_hash != fresh.fingerprint_hash:
        Voter.objects.filter(id=fresh.id).update(fingerprint_hash=origin.fingerprint_hash)
    battle.status = Battle.Status.VOTED
    battle.save(update_fields=["status", "updated_at"])
    # The answer's state is built from these rows (vote.battle.vote is this vote): nothing is read again.
    battle._prefetched_objects_cache = {"generations": generations}
    if vote.counted:
        tally_record(votes=[vote], sign=+1)
        leaderboard_refresh_soon(modality=battle.modality)
    return vote


def _categories(battle: Battle, generations: list[Generation]) -> list[str]:
    if battle.modality == "text":
        return battle_categories(battle.conversation)
    last = {g.side: g for g in generations if g.turn == battle.turn_count - 1}
    return format_categories((g.media_kind, g.media_meta) for g in last.values())


def _metadata(battle: Battle, generations: list[Generation]) -> dict:
    sides = {side: [g for g in generations if g.side == side] for side in "ab"}
    tokens = {
        side: sum(g.output_tokens for g in gens) if all(g.output_tokens is not None for g in gens) else None
        for side, gens in sides.items()
    }
    return conv_metadata(
        battle.conversation,
        [g.output for g in sides["a"]],
        [g.output for g in sides["b"]],
        tokens["a"],
        tokens["b"],
    )
