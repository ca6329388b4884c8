"""Staff console for voters, votes and the audit log: why something was flagged, and undoing it.

Every action calls a voting.integrity service (which locks, audits and fixes the tallies) and needs a
reason. Acting needs the model's change permission (voting.change_voter / voting.change_vote); staff with
view permission only see the lists without the actions. Voters and votes change only through those actions:
their change pages are view-only for everyone (arena.admin_forms.ChangedOnlyByActions). A refused action
brings the list back with the same rows checked (arena.admin_forms.RefusalKeepsSelection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from arena.admin_forms import ChangedOnlyByActions, RefusalKeepsSelection, action_refuse, audit_target_html
from arena.audit import AuditTarget, Named, audit_target_namer, audit_targets
from arena.errors import ArenaError
from arena.models import AuditEntry, ModelEntry
from voting import integrity
from voting.models import Vote, Voter
from voting.reasons import BANNED, FLAGGED, SWEEP, VOTE_TARGET, VOTE_TIME, VOTER_TARGET


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=500,
        label="Reason (required)",
        widget=forms.TextInput(attrs={"size": 50, "placeholder": "why: shown in the audit log"}),
    )


def _reason(admin_: admin.ModelAdmin, request: HttpRequest) -> str | None:
    reason = request.POST.get("reason", "").strip()
    if not reason:
        action_refuse(admin_, request, "Give a reason for this action; nothing was changed.")
        return None
    return reason


def _run(
    admin_: admin.ModelAdmin, request: HttpRequest, label: str, calls: list[Callable[[], object]]
) -> None:
    """Run one service call per selected row and say how many changed (None/empty = nothing to do)."""
    changed = 0
    for call in calls:
        try:
            changed += bool(call())
        except ArenaError as exc:
            action_refuse(admin_, request, exc.message)
    skipped = len(calls) - changed
    note = f" ({skipped} already in that state)" if skipped else ""
    admin_.message_user(request, f"{label}: {changed} changed{note}.", messages.SUCCESS)


class RiskFilter(admin.SimpleListFilter):
    title = "risk"
    parameter_name = "risk"
    _BANDS = {"high": (0.5, None), "medium": (0.2, 0.5), "low": (None, 0.2)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("high", "high (≥ 0.5)"), ("medium", "medium (0.2 to 0.5)"), ("low", "low (< 0.2)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        band = self._BANDS.get(self.value() or "")
        if band is None:
            return queryset
        low, high = band
        if low is not None:
            queryset = queryset.filter(risk_score__gte=low)
        return queryset.filter(risk_score__lt=high) if high is not None else queryset


def _audit_rows(target_type: str, target_id: int) -> str:
    entries = AuditEntry.objects.filter(target_type=target_type, target_id=str(target_id)).select_related(
        "actor"
    )[:50]
    if not entries:
        return "—"
    rows = format_html_join(
        "",
        "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                reverse("admin:arena_auditentry_change", args=[e.id]),
                f"{e.created_at:%Y-%m-%d %H:%M}",
                e.action,
                e.actor.get_username() if e.actor_id else f"rule {e.rule}",
                e.reason,
            )
            for e in entries
        ),
    )
    return format_html("<table><tr><th>when</th><th>action</th><th>who</th><th>why</th></tr>{}</table>", rows)


# --- voters --------------------------------------------------------------------------------------------


@admin.register(Voter)
class VoterAdmin(ChangedOnlyByActions, RefusalKeepsSelection):
    action_form = ReasonActionForm
    actions = ["flag", "unflag", "ban", "unban"]
    list_display = [
        "code",
        "user",
        "flagged",
        "banned",
        "trusted",
        "risk",
        "reasons",
        "votes_counted",
        "votes_total",
        "created_at",
    ]
    list_filter = ["flagged", "banned", "trusted", RiskFilter]
    search_fields = ["code", "user__username"]
    list_select_related = ["user"]
    fields = [
        "code",
        "user",
        "flagged",
        "flag_reasons",
        "banned",
        "trusted",
        "risk_score",
        "vote_summary",
        "history",
        "session_hash",
        "ip_hash",
        "network_hash",
        "fingerprint_hash",
        "raw_ip",
        "created_at",
        "last_seen_at",
    ]
    readonly_fields = fields
    read_only_message = "Voter {obj} is read-only: nothing was changed. Flag or ban them with an action."

    def get_queryset(self, request: HttpRequest) -> QuerySet[Voter]:
        return (
            super()
            .get_queryset(request)
            .annotate(n_votes=Count("votes"), n_counted=Count("votes", filter=Q(votes__counted=True)))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # voters come from visits

    def has_delete_permission(self, request: HttpRequest, obj: Voter | None = None) -> bool:
        return False  # their votes are append-only

    @admin.display(description="risk", ordering="risk_score")
    def risk(self, voter: Voter) -> str:
        return f"{voter.risk_score:.2f}"

    @admin.display(description="flag reasons")
    def reasons(self, voter: Voter) -> str:
        return ", ".join(map(str, voter.flag_reasons)) or "—"

    @admin.display(description="counted votes", ordering="n_counted")
    def votes_counted(self, voter: Voter) -> int:
        return voter.n_counted  # type: ignore[attr-defined]

    @admin.display(description="votes", ordering="n_votes")
    def votes_total(self, voter: Voter) -> str:
        url = reverse("admin:voting_vote_changelist") + f"?voter__id__exact={voter.id}"
        return format_html("<a href='{}'>{}</a>", url, voter.n_votes)  # type: ignore[attr-defined]

    @admin.display(description="votes")
    def vote_summary(self, voter: Voter) -> str:
        excluded = voter.votes.filter(counted=False).values_list("exclusion_reason").annotate(n=Count("id"))
        parts = [f"{voter.n_counted} counted of {voter.n_votes}"]  # type: ignore[attr-defined]
        parts += [f"{n} out: {reason}" for reason, n in excluded.order_by("-n")[:10]]
        return "; ".join(parts)

    @admin.display(description="audit history")
    def history(self, voter: Voter) -> str:
        return _audit_rows(VOTER_TARGET, voter.id)

    def _each(self, request: HttpRequest, queryset: QuerySet[Voter], label: str, service: Callable) -> None:
        reason = _reason(self, request)
        if reason is None:
            return
        boards: set[str] = set()

        def one(voter_id: int) -> object:
            change = service(voter_id=voter_id, reason=reason, actor_id=request.user.id, refresh=False)
            boards.update(change.modalities if change else ())
            return change

        _run(self, request, label, [lambda i=i: one(i) for i in queryset.values_list("id", flat=True)])
        integrity.refresh_on_commit(boards)  # one recompute per board, however many voters were selected

    @admin.action(description="Flag: leave all their votes out", permissions=["change"])
    def flag(self, request: HttpRequest, queryset: QuerySet[Voter]) -> None:
        def flag_one(**kw: Any) -> object:
            return integrity.voter_flag(reasons=[f"staff: {kw['reason']}"], **kw)

        self._each(request, queryset, "Flagged", flag_one)

    @admin.action(description="Unflag: count again the votes the flag left out", permissions=["change"])
    def unflag(self, request: HttpRequest, queryset: QuerySet[Voter]) -> None:
        self._each(request, queryset, "Unflagged", integrity.voter_unflag)

    @admin.action(description="Ban: store their votes but never count them", permissions=["change"])
    def ban(self, request: HttpRequest, queryset: QuerySet[Voter]) -> None:
        self._each(request, queryset, "Banned", integrity.voter_ban)

    @admin.action(description="Unban: count again the votes the ban left out", permissions=["change"])
    def unban(self, request: HttpRequest, queryset: QuerySet[Voter]) -> None:
        self._each(request, queryset, "Unbanned", integrity.voter_unban)


# --- votes ---------------------------------------------------------------------------------------------


class ExclusionFilter(admin.SimpleListFilter):
    title = "why not counted"
    parameter_name = "why"
    _PREFIXES = {"flagged": FLAGGED, "banned": BANNED, "vote_time": VOTE_TIME, "sweep": SWEEP}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("flagged", "voter flagged"),
            ("banned", "voter banned"),
            ("vote_time", "vote-time risk"),
            ("sweep", "fraud sweep"),
            ("other", "other (identity leak, staff)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in self._PREFIXES:
            return queryset.filter(counted=False, exclusion_reason__startswith=self._PREFIXES[value])
        if value == "other":
            known = Q()
            for prefix in self._PREFIXES.values():
                known |= Q(exclusion_reason__startswith=prefix)
            return queryset.filter(counted=False).exclude(known)
        return queryset


class ModelFilter(admin.SimpleListFilter):
    """Votes on battles in which a model took part, on either side."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        models = ModelEntry.objects.order_by("modality", "slug").values_list("id", "slug", "modality")
        return [(str(i), f"{slug} ({modality})") for i, slug, modality in models]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return queryset.filter(Q(battle__model_a_id=int(value)) | Q(battle__model_b_id=int(value)))


@admin.register(Vote)
class VoteAdmin(ChangedOnlyByActions, RefusalKeepsSelection):
    action_form = ReasonActionForm
    actions = ["exclude_votes", "restore_votes"]
    list_display = [
        "battle",
        "modality",
        "model_a",
        "model_b",
        "choice",
        "counted",
        "exclusion_reason",
        "voter",
        "risk",
        "risk_reasons",
        "seconds_to_vote",
        "created_at",
    ]
    list_filter = [
        "counted",
        ExclusionFilter,
        ModelFilter,
        ("battle__modality", admin.ChoicesFieldListFilter),
        RiskFilter,
        "choice",
    ]
    list_select_related = ["battle__model_a", "battle__model_b", "voter"]
    search_fields = ["battle__code", "voter__code", "battle__model_a__slug", "battle__model_b__slug"]
    search_help_text = "Battle code, voter code or model slug."
    fields = [
        "battle",
        "modality",
        "model_a",
        "model_b",
        "voter",
        "choice",
        "counted",
        "exclusion_reason",
        "risk_score",
        "risk_reasons",
        "seconds_to_vote",
        "created_at",
        "categories",
        "history",
    ]
    readonly_fields = fields
    read_only_message = "This vote is read-only: nothing was changed. Exclude or restore it with an action."

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # votes come from battles

    def has_delete_permission(self, request: HttpRequest, obj: Vote | None = None) -> bool:
        return False  # votes are append-only: exclude them instead

    @admin.display(description="risk", ordering="risk_score")
    def risk(self, vote: Vote) -> str:
        return f"{vote.risk_score:.2f}"

    @admin.display(description="modality", ordering="battle__modality")
    def modality(self, vote: Vote) -> str:
        return vote.battle.get_modality_display()

    @admin.display(description="model A", ordering="battle__model_a__slug")
    def model_a(self, vote: Vote) -> str:
        return vote.battle.model_a.slug

    @admin.display(description="model B", ordering="battle__model_b__slug")
    def model_b(self, vote: Vote) -> str:
        return vote.battle.model_b.slug

    @admin.display(description="audit history")
    def history(self, vote: Vote) -> str:
        return _audit_rows(VOTE_TARGET, vote.id)

    def _votes(self, request: HttpRequest, queryset: QuerySet[Vote], label: str, service: Callable) -> None:
        reason = _reason(self, request)
        if reason is None:
            return
        ids = list(queryset.values_list("id", flat=True))
        try:
            done = service(vote_ids=ids, reason=reason, actor_id=request.user.id)
        except ArenaError as exc:
            action_refuse(self, request, exc.message)
            return
        skipped = len(ids) - len(done)
        note = f" ({skipped} already in that state)" if skipped else ""
        self.message_user(request, f"{label}: {len(done)} changed{note}.", messages.SUCCESS)

    @admin.action(description="Exclude: store but do not count", permissions=["change"])
    def exclude_votes(self, request: HttpRequest, queryset: QuerySet[Vote]) -> None:
        self._votes(request, queryset, "Excluded", integrity.vote_exclude)

    @admin.action(description="Restore: count again", permissions=["change"])
    def restore_votes(self, request: HttpRequest, queryset: QuerySet[Vote]) -> None:
        self._votes(request, queryset, "Restored", integrity.vote_restore)


# --- the audit log -------------------------------------------------------------------------------------


class RuleFilter(admin.SimpleListFilter):
    title = "rule"
    parameter_name = "rule_kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        rules = AuditEntry.objects.exclude(rule="").values_list("rule", flat=True).distinct()[:500]
        kinds = sorted({rule.split(":", 1)[0] for rule in rules})
        return [("staff", "by staff"), *((kind, kind) for kind in kinds)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "staff":
            return queryset.filter(actor__isnull=False)
        if value:
            return queryset.filter(Q(rule=value) | Q(rule__startswith=f"{value}:"))
        return queryset


def _revert_permission(entry: AuditEntry) -> str:
    """Undoing an entry needs the change permission on its target ("voting.voter" -> voting.change_voter)."""
    app_label, _, model = entry.target_type.partition(".")
    return f"{app_label}.change_{model}"


@admin.register(AuditEntry)
class AuditEntryAdmin(RefusalKeepsSelection):
    """Read-only: entries are never edited. "Undo" writes a new entry that reverts the selected one."""

    action_form = ReasonActionForm
    actions = ["undo"]
    list_display = ["created_at", "who", "action", "target", "reason", "undone", "reverts"]
    list_filter = ["action", "target_type", RuleFilter, ("actor", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["target_id", "reason", "rule"]
    search_help_text = "Target id, reason or rule."
    list_select_related = ["actor", "reverts"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "actor",
        "rule",
        "action",
        "target",
        "target_type",
        "target_id",
        "reason",
        "before",
        "after",
        "reverts",
        "undone_by",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEntry]:
        return super().get_queryset(request).annotate(n_reverted=Count("reverted_by"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_undo_permission(self, request: HttpRequest) -> bool:
        # Offered to staff who may change something; each entry is checked against its own target below.
        return any(p.partition(".")[2].startswith("change_") for p in request.user.get_all_permissions())

    @admin.display(description="who")
    def who(self, entry: AuditEntry) -> str:
        return entry.actor.get_username() if entry.actor_id else f"rule {entry.rule}"

    def changelist_rows(self, request: HttpRequest, rows: list[AuditEntry]) -> None:
        super().changelist_rows(request, rows)
        named = audit_targets(rows)  # one query per target type on the page, not one per row
        for entry in rows:
            entry._arena_target = named[entry.id]  # type: ignore[attr-defined]

    @admin.display(description="target")
    def target(self, entry: AuditEntry) -> str:
        named: AuditTarget | None = getattr(entry, "_arena_target", None)
        return audit_target_html(named or audit_targets([entry])[entry.id])

    @admin.display(description="undone", boolean=True)
    def undone(self, entry: AuditEntry) -> bool:
        return bool(getattr(entry, "n_reverted", 0))

    @admin.display(description="undone by")
    def undone_by(self, entry: AuditEntry) -> str:
        later = entry.reverted_by.all()
        if not later:
            return "—"
        return format_html_join(
            ", ",
            "<a href='{}'>#{}</a>",
            ((reverse("admin:arena_auditentry_change", args=[e.id]), e.id) for e in later),
        )

    @admin.action(description="Undo the selected actions", permissions=["undo"])
    def undo(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> None:
        reason = _reason(self, request)
        if reason is None:
            return
        calls = []
        for entry in queryset.order_by("-created_at", "-id"):  # newest first: later actions undone first
            if not request.user.has_perm(_revert_permission(entry)):
                action_refuse(self, request, f"You cannot undo “{entry.action}” (#{entry.id}).")
                continue
            calls.append(lambda e=entry: _undo_entry(e, reason=reason, actor_id=request.user.id))
        _run(self, request, "Undone", calls)


def _undo_entry(entry: AuditEntry, *, reason: str, actor_id: int) -> object:
    if entry.action in integrity.VOTING_ACTIONS:
        return integrity.audit_revert(entry_id=entry.id, reason=reason, actor_id=actor_id)
    from arena.curation import audit_field_revert

    return audit_field_revert(entry_id=entry.id, actor_id=actor_id, reason=reason)


# --- how audit entries name voters and votes (arena.audit) -----------------------------------------------


@audit_target_namer(VOTE_TARGET)
def _votes_named(ids: list[int]) -> dict[int, str | Named]:
    rows = Vote.objects.filter(id__in=ids).select_related("battle__model_a", "battle__model_b")
    return {v.id: f"vote on battle {v.battle.code} ({_pair(v)})" for v in rows}


def _pair(vote: Vote) -> str:
    return f"{vote.battle.model_a.slug} vs {vote.battle.model_b.slug}"


@audit_target_namer(VOTER_TARGET)
def _voters_named(ids: list[int]) -> dict[int, str | Named]:
    return {v.id: f"voter {v.code}" for v in Voter.objects.filter(id__in=ids).only("id", "code")}
