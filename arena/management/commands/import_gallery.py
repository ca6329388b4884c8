from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.gallery import MODALITIES, GalleryRejected, gallery_import


class Command(BaseCommand):
    help = (
        "Import a pre-generated gallery in 3D Arena's layout: DIR/inputs/<id>.{txt,png,jpg} and "
        "DIR/outputs/<model>/<id>.{glb,gltf,obj,ply,splat,spz,png,jpg,webp}. Every file is checked by its "
        "content first; a gallery with any problem is refused with the full list and nothing is written. "
        "Importing the same directory again only writes what changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--name", help="The prompt set's name (default: the directory's name).")
        parser.add_argument("--slug", help="The prompt set's slug (default: from the name).")
        parser.add_argument(
            "--modality",
            choices=MODALITIES,
            help="image or 3d (default: from the outputs; mixed is refused).",
        )
        parser.add_argument(
            "--showcase",
            nargs="+",
            metavar="ID",
            help="Prompt ids kept out of battles whose outputs are the models' leaderboard thumbnails; "
            "replaces the set's showcase prompts (default: leave them as they are).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check and report; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = gallery_import(
                options["directory"],
                name=options["name"],
                slug=options["slug"],
                modality=options["modality"],
                showcase=options["showcase"],
                dry_run=options["dry_run"],
                progress=self.stdout.write,
            )
        except GalleryRejected as exc:
            raise CommandError(exc.report()) from exc
        self.stdout.write(self.style.SUCCESS(report.summary()))
