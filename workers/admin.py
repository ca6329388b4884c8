"""Admin for the workers app: the periodic schedule, read-only (beat and the workers write it)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from workers.models import ScheduleRun
from workers.schedule import ScheduleStatus, entry_status, schedule_status


@admin.register(ScheduleRun)
class ScheduleRunAdmin(admin.ModelAdmin):
    list_display = [
        *("name", "task", "every", "last_sent_at", "last_finished_at", "last_state", "last_detail", "late")
    ]
    readonly_fields = [f.name for f in ScheduleRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScheduleRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ScheduleRun | None = None) -> bool:
        return False

    def _status(self, obj: ScheduleRun) -> ScheduleStatus | None:
        return entry_status(obj.name, obj)  # from the row itself: no query per row

    @admin.display(description="every")
    def every(self, obj: ScheduleRun) -> str:
        status = self._status(obj)
        return f"{status.every_seconds:g} s" if status else "not scheduled"

    @admin.display(description="overdue", boolean=True)
    def late(self, obj: ScheduleRun) -> bool | None:
        status = self._status(obj)
        return status.overdue if status else None

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> object:
        # Entries beat has never sent have no row yet: say so above the list once they are late (beat sends
        # each one first an interval after it starts, so right after a start none is missing yet).
        missing = [s.name for s in schedule_status() if s.last_sent_at is None and s.overdue]
        context = {**(extra_context or {})}
        if missing:
            self.message_user(
                request,
                f"Overdue, never sent by beat (as of {timezone.now():%H:%M:%S}): {', '.join(missing)}. "
                "Is beat running? See /readyz?strict=1.",
                level="warning",
            )
        return super().changelist_view(request, extra_context=context)
