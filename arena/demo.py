"""The embedded default's demo models and prompt set."""

from __future__ import annotations

from django.db import transaction

from arena.models import Modality, ModelEntry, Prompt, PromptSet

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


@transaction.atomic
def demo_seed() -> tuple[int, int]:
    """Create or refresh the demo models and prompts. Safe to run again. Returns (models, prompts)."""
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
    return len(DEMO_MODELS), prompt_set.prompts.count()
