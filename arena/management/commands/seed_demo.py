from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from arena.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo models and prompt set, the live demo image and 3D models, and the demo "
        "image and 3D galleries (written once under ARENA_VAR_DIR/demo-gallery). Safe to run repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--text-only", action="store_true", help="Only the text demo models and prompts; no image or 3D."
        )

    def handle(self, *args: object, **options: object) -> None:
        models, prompts = demo_seed(media=not options["text_only"])
        self.stdout.write(f"Demo ready: {models} models, {prompts} prompts.")
