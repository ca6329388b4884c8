from __future__ import annotations

from django.core.management.base import BaseCommand

from arena.demo import demo_seed


class Command(BaseCommand):
    help = "Create (or refresh) the demo models and the demo prompt set. Safe to run repeatedly."

    def handle(self, *args: object, **options: object) -> None:
        models, prompts = demo_seed()
        self.stdout.write(f"Demo ready: {models} models, {prompts} prompts.")
