"""The embedded default's demo models, prompt set and galleries.

Text: five demo personas and a prompt set. Image and 3D: three live procedural models each
(workers.backends.demo_media) and a small pre-generated gallery each (arena.demo_gallery), written once under
settings.VAR_DIR and imported with the gallery service, so a fresh checkout shows every kind of battle and
the leaderboard thumbnails with no model server and no GPU.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from arena.models import Modality, ModelEntry, Prompt, PromptSet

logger = logging.getLogger(__name__)

DEMO_MODELS = [
    ("demo-brevis", "Demo Brevis", "concise"),
    ("demo-sage", "Demo Sage", "thorough"),
    ("demo-lister", "Demo Lister", "listy"),
    ("demo-lyric", "Demo Lyric", "poetic"),
    ("demo-socra", "Demo Socra", "socratic"),
]

DEMO_PROMPTS = [
    "Explain how vaccines train the immune system.",
    "Give me three tips for writing clean Python functions.",
    "Write a short poem about autumn rain.",
    "How should I prepare for a job interview?",
    "What is the difference between weather and climate?",
    "Plan a weekend trip to the mountains on a budget.",
    "Why is the sky blue?",
    "How do I make a good cup of coffee at home?",
    "Summarise the causes of the French Revolution.",
    "What are good habits for learning a new language?",
    "Explain recursion to a ten-year-old.",
    "How can a small team keep its code reviews fast?",
]


# slug, display name, backend kind, config
DEMO_MEDIA_MODELS = [
    ("demo-stripes", "Demo Stripes", Modality.IMAGE, "demo_image", {"style": "stripes"}),
    ("demo-circles", "Demo Circles", Modality.IMAGE, "demo_image", {"style": "circles"}),
    ("demo-mosaic", "Demo Mosaic", Modality.IMAGE, "demo_image", {"style": "mosaic"}),
    ("demo-blob", "Demo Blob", Modality.THREE_D, "demo_3d", {"style": "blob"}),
    ("demo-blocks", "Demo Blocks", Modality.THREE_D, "demo_3d", {"style": "blocks"}),
    ("demo-splat", "Demo Splat", Modality.THREE_D, "demo_3d", {"style": "splat"}),
]

# The demo galleries: (sub-directory, prompt set slug, name, modality); the first prompt of each is showcase.
DEMO_GALLERIES = [
    ("3d", "demo-gallery-3d", "Demo 3D gallery", Modality.THREE_D),
    ("image", "demo-gallery-image", "Demo image gallery", Modality.IMAGE),
]


@transaction.atomic
def demo_seed(*, media: bool = True) -> tuple[int, int]:
    """Create or refresh the demo models, prompts and (with `media`) the image and 3D demo models and
    galleries. Safe to run again: nothing that is already there is written twice. Returns the number of demo
    models and of demo prompts."""
    for slug, name, persona in DEMO_MODELS:
        ModelEntry.objects.update_or_create(
            slug=slug,
            defaults={
                "display_name": name,
                "organization": "Arena Demo",
                "license": "Apache-2.0",
                "modality": Modality.TEXT,
                "backend_kind": "demo",
                "backend_config": {"persona": persona},
            },
        )
    prompt_set, _ = PromptSet.objects.update_or_create(
        slug="demo", defaults={"name": "Demo prompts", "modality": Modality.TEXT, "active": True}
    )
    existing = set(prompt_set.prompts.values_list("text", flat=True))
    Prompt.objects.bulk_create(
        [
            Prompt(prompt_set=prompt_set, text=t, modality=Modality.TEXT, language="en")
            for t in DEMO_PROMPTS
            if t not in existing
        ]
    )
    if not media:
        return len(DEMO_MODELS), prompt_set.prompts.count()
    for slug, name, modality, kind, config in DEMO_MEDIA_MODELS:
        ModelEntry.objects.update_or_create(
            slug=slug,
            defaults={
                "display_name": name,
                "organization": "Arena Demo",
                "license": "Apache-2.0",
                "modality": modality,
                "backend_kind": kind,
                "backend_config": config,
            },
        )
    gallery_models, gallery_prompts = _demo_galleries_import()
    return (
        len(DEMO_MODELS) + len(DEMO_MEDIA_MODELS) + gallery_models,
        prompt_set.prompts.count() + gallery_prompts,
    )


def _demo_galleries_import() -> tuple[int, int]:
    from arena.demo_gallery import demo_gallery_ensure
    from arena.gallery import GalleryRejected, gallery_import

    root = demo_gallery_ensure(settings.VAR_DIR / "demo-gallery")
    models = prompts = 0
    for folder, slug, name, modality in DEMO_GALLERIES:
        directory = root / folder
        first = min(p.name.partition(".")[0] for p in (directory / "inputs").iterdir())
        try:
            report = gallery_import(directory, name=name, slug=slug, modality=modality, showcase=[first])
        except GalleryRejected as exc:
            # E.g. ARENA_MAX_MEDIA_BYTES set below a demo file's size: the rest of the demo still works.
            logger.warning("The demo gallery %s was not imported.\n%s", slug, exc.report())
            continue
        for model in ModelEntry.objects.filter(slug__in=[m.slug for m in report.models]):
            model.organization, model.license = model.organization or "Arena Demo", "Apache-2.0"
            model.backend_config = {**model.backend_config, "demo": True}
            model.save(update_fields=["organization", "license", "backend_config"])
        models += len(report.models)
        prompts += report.prompts_created + report.prompts_updated + report.prompts_unchanged
    return models, prompts
