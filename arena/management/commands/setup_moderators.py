"""Create (or complete) the Moderators group with the permissions moderation needs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from arena.curation import MODERATOR_PERMISSIONS, moderators_group_sync
from arena.errors import ArenaError


class Command(BaseCommand):
    help = "Create the Moderators group and grant it the moderation permissions (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            group, added = moderators_group_sync()
        except ArenaError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f'Group "{group.name}": {added} permission(s) added, {len(MODERATOR_PERMISSIONS)} required. '
            'Add staff users to it in the admin (Users → Groups) and tick "Staff status".'
        )
