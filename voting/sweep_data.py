"""The fraud sweep's reads: votes from the database as the engine's arrays, and what its scan implies.

One query (values_list, no per-vote queries) loads the votes the sweep judges: counted ones and ones left
out by the integrity machinery itself (an identity-leak void or a ban says nothing about behaviour). Each
modality is scanned on its own, because its models never meet another modality's; a voter flagged in any
modality is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
from django.db import connection
from django.db.models import Q

from arena.models import AuditEntry, ModelEntry
from ranking.engine.fraud import FraudReport, VoteArrays, fraud_scan
from voting.models import Vote, Voter
from voting.reasons import FRAUD_PREFIXES, VOTE_TARGET, VOTE_TIME

_COLUMNS = (
    "id",
    "voter_id",
    "choice",
    "seconds_to_vote",
    "created_at",
    "counted",
    "exclusion_reason",
    "risk_score",
    "prompt_hash",
    "ip_hash",
    "network_hash",
    "fingerprint_hash",
    "voter__ip_hash",
    "voter__network_hash",
    "voter__fingerprint_hash",
    "voter__trusted",
    "voter__flagged",
    "voter__banned",
    "voter__risk_score",
    "battle__modality",
    "battle__model_a_id",
    "battle__model_b_id",
)
# The UI shows model A on the left: the engine's outcome 1.0 is a left pick, 0.0 a right one.
_OUTCOME = {Vote.Choice.A: 1.0, Vote.Choice.B: 0.0, Vote.Choice.TIE: 0.5, Vote.Choice.BOTH_BAD: 0.5}
_RISK_STEP = 0.01  # smaller changes are not worth a write


def _codes(values: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Dense integer codes for hash strings ("" = unknown becomes -1), and the hash of each code."""
    if values.size == 0:
        return np.empty(0, dtype=np.int64), []
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    codes = inverse.astype(np.int64).reshape(-1)
    if uniq[0] == "":
        return codes - 1, uniq[1:].tolist()  # "" sorts first: it becomes -1, the rest shift down
    return codes, uniq.tolist()


def _prefer(primary: npt.NDArray[np.object_], fallback: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """The vote's own hash, or its voter's for votes stored before votes carried one."""
    return np.where(primary != "", primary, fallback)


@dataclass
class Findings:
    scanned_votes: int = 0
    flag: dict[int, list[str]] = field(default_factory=dict)  # voter id -> reasons, new flags only
    duplicate_votes: list[int] = field(default_factory=list)
    cleared_votes: list[int] = field(default_factory=list)
    voter_risk: dict[int, float] = field(default_factory=dict)  # changed scores only
    vote_risk: dict[int, float] = field(default_factory=dict)  # raised scores only

    def risk_save(self) -> None:
        # executemany of plain UPDATEs: psycopg pipelines them, and each row gets its own value.
        with connection.cursor() as cursor:
            for table, scores in (
                (Voter._meta.db_table, self.voter_risk),
                (Vote._meta.db_table, self.vote_risk),
            ):
                if scores:
                    cursor.executemany(
                        f"UPDATE {table} SET risk_score = %s WHERE id = %s",
                        [(r, i) for i, r in scores.items()],
                    )


class _Table:
    """The loaded votes, one numpy column per field."""

    def __init__(self, rows: Sequence[tuple]) -> None:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in _COLUMNS]
        self.col = {
            name: np.array(values, dtype=object) for name, values in zip(_COLUMNS, columns, strict=True)
        }
        self.n = len(rows)

    def ints(self, name: str) -> npt.NDArray[np.int64]:
        return self.col[name].astype(np.int64)

    def floats(self, name: str) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in self.col[name]], dtype=np.float64)

    def bools(self, name: str) -> npt.NDArray[np.bool_]:
        return self.col[name].astype(bool)

    def starts(self, prefix: str) -> npt.NDArray[np.bool_]:
        return np.array([r.startswith(prefix) for r in self.col["exclusion_reason"]], dtype=bool)


def _load(since: datetime | None) -> _Table:
    judged = Q(counted=True)
    for prefix in FRAUD_PREFIXES:
        judged |= Q(exclusion_reason__startswith=prefix)
    votes = Vote.objects.filter(judged)
    if since is not None:
        votes = votes.filter(created_at__gte=since)
    return _Table(list(votes.order_by().values_list(*_COLUMNS).iterator(chunk_size=20_000)))


class _Groups:
    """Network, IP and device codes over the whole table, so reasons can name the hash behind a code."""

    def __init__(self, table: _Table) -> None:
        col = table.col
        self.network, self.networks = _codes(_prefer(col["network_hash"], col["voter__network_hash"]))
        self.ip, _ = _codes(_prefer(col["ip_hash"], col["voter__ip_hash"]))
        self.device, self.devices = _codes(_prefer(col["fingerprint_hash"], col["voter__fingerprint_hash"]))
        self.prompt, _ = _codes(col["prompt_hash"])

    def readable(self, reason: str) -> str:
        """ "ring:3" names a dense code; staff need the (salted) network or device hash it stands for."""
        name, _, detail = reason.partition(":")
        labels = {"ring": ("net", self.networks), "ring_device": ("device", self.devices)}.get(name)
        if labels is None or not detail.isdigit() or int(detail) >= len(labels[1]):
            return reason
        return f"{name}:{labels[0]}-{labels[1][int(detail)][:12]}"


def _arrays(table: _Table, groups: _Groups, mask: npt.NDArray[np.bool_]) -> tuple[VoteArrays, list[str]]:
    """One modality's votes as engine arrays, with its models' slugs for readable reasons."""
    a, b = table.ints("battle__model_a_id")[mask], table.ints("battle__model_b_id")[mask]
    model_ids = np.unique(np.concatenate([a, b]))
    slugs = ModelEntry.objects.in_bulk(model_ids.tolist())
    timestamps = np.array([t.timestamp() for t in table.col["created_at"][mask]], dtype=np.float64)
    arrays = VoteArrays(
        voter=table.ints("voter_id")[mask],
        model_a=np.searchsorted(model_ids, a),
        model_b=np.searchsorted(model_ids, b),
        outcome=np.array([_OUTCOME[c] for c in table.col["choice"][mask]], dtype=np.float64),
        n_models=int(model_ids.size),
        network=groups.network[mask],
        ip=groups.ip[mask],
        device=groups.device[mask],
        seconds_to_vote=table.floats("seconds_to_vote")[mask],
        timestamp=timestamps,
        prompt=groups.prompt[mask],
    )
    return arrays, [slugs[i].slug if i in slugs else str(i) for i in model_ids.tolist()]


@dataclass
class _Scan:
    """Per-vote results merged over modalities (arrays follow the loaded table)."""

    groups: _Groups
    fired: dict[int, list[str]] = field(default_factory=dict)
    voter_risk: dict[int, float] = field(default_factory=dict)
    vote_risk: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    duplicate: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def merge(self, report: FraudReport, arrays: VoteArrays, mask: npt.NDArray[np.bool_]) -> None:
        for flag in report.flagged_voters():
            reasons = self.fired.setdefault(flag.voter, [])
            reasons += [r for r in map(self.groups.readable, flag.reasons) if r not in reasons]
        for voter, risk in zip(report.voter_ids.tolist(), report.voter_risk.tolist(), strict=True):
            self.voter_risk[voter] = max(risk, self.voter_risk.get(voter, 0.0))
        self.vote_risk[mask] = report.vote_risk
        # Votes left out for their own sake (a prompt repeated too often), not because their voter was.
        self.duplicate[mask] = report.vote_excluded & ~report.voter_flagged[arrays.voter_index]


def _scan(table: _Table) -> _Scan:
    groups = _Groups(table)
    scan = _Scan(groups, vote_risk=np.zeros(table.n), duplicate=np.zeros(table.n, dtype=bool))
    modality = table.col["battle__modality"]
    for name in sorted(set(modality.tolist())):
        mask = modality == name
        arrays, slugs = _arrays(table, groups, mask)
        scan.merge(fraud_scan(arrays, model_names=slugs), arrays, mask)
    return scan


def _staff_restored(vote_ids: list[int]) -> set[int]:
    """Votes a person has put back in the count: the sweep never takes them out again."""
    if not vote_ids:
        return set()
    rows = AuditEntry.objects.filter(
        action="vote.restore", target_type=VOTE_TARGET, actor__isnull=False, target_id__in=map(str, vote_ids)
    ).values_list("target_id", flat=True)
    return {int(t) for t in rows}


def sweep_findings(*, since: datetime | None) -> Findings:
    """Load, scan and decide; nothing is written here (the sweep acts through the integrity services)."""
    table = _load(since)
    findings = Findings(scanned_votes=table.n)
    if table.n == 0:
        return findings
    scan = _scan(table)
    ids, voters = table.ints("id"), table.ints("voter_id")
    settled = table.bools("voter__flagged") | table.bools("voter__banned")
    eligible = dict(zip(voters.tolist(), (~settled & ~table.bools("voter__trusted")).tolist(), strict=True))
    findings.flag = {v: reasons for v, reasons in scan.fired.items() if eligible[v]}
    fired, to_flag = np.isin(voters, list(scan.fired)), np.isin(voters, list(findings.flag))
    # A repeated prompt is a rule about the vote: it applies to a cleared (trusted) voter too.
    candidates = ids[scan.duplicate & table.bools("counted") & ~settled & ~to_flag].tolist()
    restored = _staff_restored(candidates)
    findings.duplicate_votes = [i for i in candidates if i not in restored]
    held = table.starts(VOTE_TIME) & ~table.bools("counted")
    findings.cleared_votes = ids[held & ~settled & ~fired & ~scan.duplicate].tolist()
    old_voter_risk = dict(zip(voters.tolist(), table.floats("voter__risk_score").tolist(), strict=True))
    findings.voter_risk = {
        v: r for v, r in scan.voter_risk.items() if abs(r - old_voter_risk[v]) >= _RISK_STEP
    }
    raised = scan.vote_risk >= table.floats("risk_score") + _RISK_STEP
    findings.vote_risk = dict(zip(ids[raised].tolist(), scan.vote_risk[raised].tolist(), strict=True))
    return findings
