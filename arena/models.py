"""Models, prompts and battles: what is compared, on what, and what each side answered."""

from __future__ import annotations

import secrets

from django.core.validators import MinValueValidator
from django.db import models

from arena.disclosure import FailureKind
from arena.media import MediaInfo


def public_code() -> str:
    """Random public id for URLs and websocket groups; integer pks never leave the server."""
    return secrets.token_urlsafe(12)


class Modality(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    THREE_D = "3d", "3D"


DEMO_BACKENDS = frozenset({"demo", "demo_image", "demo_3d"})


class ModelEntry(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    organization = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=100, blank=True)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT, db_index=True)
    backend_kind = models.CharField(max_length=40)
    backend_config = models.JSONField(default=dict, blank=True)
    queue = models.CharField(
        max_length=100,
        blank=True,
        help_text="Celery queue for this model's generations; blank = gen-<modality>.",
    )
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    active = models.BooleanField(default=True)
    released = models.BooleanField(default=True, help_text="Two unreleased models are never paired together.")
    battle_targets = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="targeted_by",
        help_text="Rivals this model is preferentially paired with.",
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Inputs this model's server refused in a row (context length, content refusal): not failures, since a
    # visitor chooses the prompt, but a streak of them asks for a probe (a misconfigured model refuses all).
    consecutive_rejections = models.PositiveIntegerField(default=0)
    outage_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["modality", "slug"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.slug

    @property
    def is_demo(self) -> bool:
        """Built-in demo output (canned text, procedural pictures and shapes, the generated demo galleries):
        labelled as demo in the UI so nobody mistakes it for a real model."""
        config = self.backend_config if isinstance(self.backend_config, dict) else {}
        return self.backend_kind in DEMO_BACKENDS or config.get("demo") is True

    @property
    def in_outage(self) -> bool:
        return self.outage_since is not None

    def generation_queue(self) -> str:
        return self.queue or f"gen-{self.modality}"


class PromptSet(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    class Status(models.TextChoices):
        APPROVED = "approved"
        PENDING = "pending"
        BLOCKED = "blocked"

    prompt_set = models.ForeignKey(
        PromptSet, null=True, blank=True, on_delete=models.PROTECT, related_name="prompts"
    )
    text = models.TextField(blank=True)
    # Image-to-3D prompts carry an input image (a gallery's inputs/<id>.png); storage name, never shown as is.
    image = models.CharField(max_length=255, blank=True)
    # The prompt's id in its gallery (inputs/<id>.*); outputs/<model>/<id>.* belong to it.
    gallery_key = models.CharField(max_length=200, blank=True)
    # Kept out of battles; its outputs are the models' thumbnails on the leaderboard (they would give a
    # model away if the same output could also turn up in a battle).
    showcase = models.BooleanField(default=False)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    language = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPROVED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt_set", "gallery_key"],
                condition=~models.Q(gallery_key=""),
                name="one_prompt_per_gallery_key",
            )
        ]

    def __str__(self) -> str:
        return self.text[:60] or self.gallery_key or f"prompt {self.pk}"


class Battle(models.Model):
    class Status(models.TextChoices):
        GENERATING = "generating"
        READY = "ready"  # both sides of the last turn are done: the voter may vote or continue
        FAILED = "failed"
        VOTED = "voted"
        # The voter skipped it (arena.services.battle_skip): recorded, never voted, on no board.
        SKIPPED = "skipped"

    code = models.CharField(max_length=32, unique=True, default=public_code, editable=False)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    voter = models.ForeignKey("voting.Voter", on_delete=models.PROTECT, related_name="battles")
    model_a = models.ForeignKey(ModelEntry, on_delete=models.PROTECT, related_name="+")
    model_b = models.ForeignKey(ModelEntry, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey(
        Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="battles"
    )
    # The user's messages, one per turn; each side's answers are its Generation rows.
    conversation = models.JSONField(default=list)
    # Image-to-3D: the uploaded (or gallery) input image's storage name.
    input_image = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.GENERATING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When both sides of the latest turn finished: time-to-vote is measured from here.
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["voter", "-created_at"])]
        permissions = [("export_battle", "Can export battles and their votes")]

    def __str__(self) -> str:
        return self.code

    @property
    def turn_count(self) -> int:
        return len(self.conversation)


class StoredMedia(models.Model):
    """An image or 3D file in the default storage under a random name (arena.media), and what it is. The
    browser only ever sees a battle's own URL for it (/m/<code>/<turn>/<side>.<ext>), never the name."""

    media_name = models.CharField(max_length=255, blank=True)
    # png, jpg, webp, glb, gltf, obj, ply, splat, spz
    media_format = models.CharField(max_length=8, blank=True)
    media_kind = models.CharField(max_length=8, blank=True)  # image, mesh, splat
    media_meta = models.JSONField(default=dict, blank=True)  # size, vertex/face/splat counts, textured
    thumbnail_name = models.CharField(max_length=255, blank=True)

    class Meta:
        abstract = True

    @property
    def media_info(self) -> MediaInfo:
        return MediaInfo(self.media_format, self.media_kind, self.media_meta)


class Generation(StoredMedia):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Side(models.TextChoices):
        A = "a", "A"
        B = "b", "B"

    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="generations")
    turn = models.PositiveSmallIntegerField()
    side = models.CharField(max_length=1, choices=Side.choices)
    model = models.ForeignKey(ModelEntry, on_delete=models.PROTECT, related_name="generations")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    output = models.TextField(blank=True)  # text answers; image and 3D ones are StoredMedia
    # A failed side: `failure_kind` is what a voter may know (arena.disclosure.FailureKind), `error` the
    # neutral text for that kind (voter_failure_text), `error_detail` the backend's own words, for staff and
    # logs only (they name or fingerprint the model: context limits, key names, server banners).
    error = models.TextField(blank=True)
    failure_kind = models.CharField(
        max_length=12, blank=True, choices=[(kind.value, kind.value) for kind in FailureKind]
    )
    error_detail = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_chunk_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Set by the content check when the answer finished: the page hides it behind a click and the
    # battle's vote is stored but not counted.
    flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["battle_id", "turn", "side"]
        constraints = [
            models.UniqueConstraint(fields=["battle", "turn", "side"], name="one_generation_per_side")
        ]

    def __str__(self) -> str:
        return f"{self.battle_id}/{self.turn}/{self.side}"


class GalleryOutput(StoredMedia):
    """A pre-generated output of one model for one gallery prompt (3D Arena's outputs/<model>/<id>.*)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="gallery_outputs")
    model = models.ForeignKey(ModelEntry, on_delete=models.CASCADE, related_name="gallery_outputs")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "model"], name="one_output_per_prompt_model")
        ]

    def __str__(self) -> str:
        return f"{self.model.slug}/{self.prompt.gallery_key}"


class AuditEntry(models.Model):
    """One moderation action, automatic or by staff: who or which rule, what, why, before and after.

    Every exclusion, restoration, flag, ban or model change writes one. An action is undone by a new
    entry that points back at the one it reverses; entries themselves are never edited or deleted.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    rule = models.CharField(
        max_length=100, blank=True, help_text="The automatic rule that acted, if no person did."
    )
    action = models.CharField(max_length=60, db_index=True)
    target_type = models.CharField(max_length=60, db_index=True)
    target_id = models.CharField(max_length=64, db_index=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reverts = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        who = self.actor.get_username() if self.actor_id else f"rule:{self.rule}"
        return f"{self.created_at:%Y-%m-%d %H:%M} {who} {self.action} {self.target_type}:{self.target_id}"
