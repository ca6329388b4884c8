"""Import a pre-generated gallery (3D Arena's layout) as a prompt set, gallery models and their outputs.

    DIR/inputs/<id>.txt                     a text prompt
    DIR/inputs/<id>.{png,jpg,jpeg,webp}     an input image (image-to-3D); an id may have both
    DIR/outputs/<model>/<id>.<ext>          that model's output for the prompt: glb, gltf, obj, ply, splat,
                                            spz (3D) or png, jpg, jpeg, webp (image)

All or nothing: every file is checked by its content first (arena.media.media_accept, which also rewrites
it without metadata: a gallery file's text chunks, EXIF, glTF generator and names or PLY comments must not
name its model to the voter) and every problem is collected, so one run lists everything wrong with a
gallery; only a clean gallery is written, its files stored under random names before one short transaction
writes the rows. If anything fails on the way the
files stored so far are deleted again. Importing the same directory again is idempotent: `sha256` is the
stored (rewritten) file's, and rewriting is deterministic, so an output whose rewritten bytes have not
changed is left alone, a changed one is replaced and its old file deleted after the commit (a gallery
imported before files were rewritten is rewritten by importing it again).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.text import slugify

from arena.media import MediaInfo, MediaRejected, media_accept, media_inspect, media_read, media_save
from arena.models import GalleryOutput, Modality, ModelEntry, Prompt, PromptSet
from workers.backends import BackendConfigError, backend_validate

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = ("txt",)
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
MESH_EXTENSIONS = ("glb", "gltf", "obj", "ply", "splat", "spz")
OUTPUT_EXTENSIONS = MESH_EXTENSIONS + IMAGE_EXTENSIONS
MODALITIES = (Modality.IMAGE.value, Modality.THREE_D.value)

Progress = Callable[[str], None]


class GalleryRejected(Exception):
    """The gallery was not imported; `problems` lists every reason, each naming its file."""

    def __init__(self, problems: list[str], warnings: list[str] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(problems[:3]))

    def report(self) -> str:
        lines = [f"The gallery was not imported: {len(self.problems)} problem(s). Nothing was written."]
        lines += [f"  - {problem}" for problem in self.problems]
        if self.warnings:
            lines.append("Also noted:")
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)


@dataclass
class _File:
    path: Path
    rel: str  # the path shown in reports, relative to the gallery directory
    info: MediaInfo  # of the file as stored (rewritten without metadata)
    sha256: str  # of the file as stored
    source_info: MediaInfo  # of the file in the gallery directory
    source_sha256: str  # of the file in the gallery directory: a change while importing is caught


@dataclass
class _Input:
    key: str
    text: str = ""
    text_rel: str = ""
    image: _File | None = None


@dataclass
class _Model:
    folder: str
    slug: str
    outputs: dict[str, _File] = field(default_factory=dict)  # gallery key -> file


@dataclass
class ModelReport:
    slug: str
    folder: str
    created: bool = False
    new: int = 0
    replaced: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.replaced + self.unchanged

    def line(self, dry_run: bool = False) -> str:
        state = "new model" if self.created else "existing model"
        return (
            f"{self.folder} ({self.slug}, {state}): {self.total} outputs, {self.new} new, "
            f"{self.replaced} replaced, {self.unchanged} unchanged{' (dry run)' if dry_run else ''}"
        )


@dataclass
class GalleryReport:
    set_slug: str
    set_name: str
    modality: str
    dry_run: bool = False
    set_created: bool = False
    prompts_created: int = 0
    prompts_updated: int = 0
    prompts_unchanged: int = 0
    models: list[ModelReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        outputs = sum(m.total for m in self.models)
        new = sum(m.new for m in self.models)
        replaced = sum(m.replaced for m in self.models)
        head = "Dry run, nothing written: " if self.dry_run else ""
        lines = [
            f"{head}gallery {self.set_slug!r} ({self.modality}, {'new' if self.set_created else 'existing'} "
            f"prompt set): {self.prompts_created + self.prompts_updated + self.prompts_unchanged} prompts "
            f"({self.prompts_created} new, {self.prompts_updated} updated, "
            f"{self.prompts_unchanged} unchanged), "
            f"{len(self.models)} models, {outputs} outputs ({new} new, {replaced} replaced, "
            f"{outputs - new - replaced} unchanged)."
        ]
        if self.warnings:
            lines.append(f"{len(self.warnings)} note(s):")
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)


@dataclass
class _Plan:
    directory: Path
    set_slug: str
    set_name: str
    name_given: bool
    modality: str
    inputs: dict[str, _Input]
    models: dict[str, _Model]  # slug -> model
    showcase: set[str] | None
    warnings: list[str]


# --- scanning and checking ---------------------------------------------------------------------------------


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, ext.lower()) if dot and stem else (name, "")


def _inspect(path: Path, rel: str, ext: str, problems: list[str]) -> _File | None:
    limit = settings.ARENA_MAX_MEDIA_BYTES
    size = path.stat().st_size
    if size > limit:  # refused before it is read into memory
        problems.append(f"{rel}: the file is {size:,} bytes; the limit is {limit:,}.")
        return None
    data = path.read_bytes()
    try:
        source_info = media_inspect(data, format_hint=ext, max_bytes=limit)
        clean, info = media_accept(data, info=source_info, max_bytes=limit)
    except MediaRejected as exc:
        problems.append(f"{rel}: {exc}")
        return None
    return _File(
        path=path,
        rel=rel,
        info=info,
        sha256=hashlib.sha256(clean).hexdigest(),
        source_info=source_info,
        source_sha256=hashlib.sha256(data).hexdigest(),
    )


def _visible(folder: Path) -> list[Path]:
    """A folder's entries in name order, without hidden files (.DS_Store, ._* and the like)."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _scan_inputs(directory: Path, problems: list[str], warnings: list[str]) -> dict[str, _Input]:
    inputs: dict[str, _Input] = {}
    for path in _visible(directory / "inputs"):
        rel = f"inputs/{path.name}"
        if path.is_dir():
            warnings.append(f"{rel}/: a folder inside inputs/ is ignored.")
            continue
        key, ext = _split(path.name)
        if ext not in TEXT_EXTENSIONS + IMAGE_EXTENSIONS:
            problems.append(
                f"{rel}: unknown input type {('.' + ext) if ext else '(no extension)'}; "
                f"inputs are .txt prompts or {', '.join('.' + e for e in IMAGE_EXTENSIONS)} images."
            )
            continue
        if len(key) > 200:
            problems.append(f"{rel}: the id is longer than 200 characters.")
            continue
        entry = inputs.setdefault(key, _Input(key=key))
        if ext in TEXT_EXTENSIONS:
            try:
                text = path.read_bytes().decode("utf-8-sig").strip()
            except UnicodeDecodeError:
                problems.append(f"{rel}: the prompt is not UTF-8 text.")
                continue
            if not text:
                problems.append(f"{rel}: the prompt is empty.")
            elif len(text) > settings.ARENA_MAX_PROMPT_CHARS:
                problems.append(
                    f"{rel}: the prompt has {len(text):,} characters; "
                    f"the limit is {settings.ARENA_MAX_PROMPT_CHARS:,}."
                )
            entry.text, entry.text_rel = text, rel
            continue
        if entry.image is not None:
            problems.append(f"{rel}: id {key!r} already has an input image ({entry.image.rel}).")
            continue
        checked = _inspect(path, rel, ext, problems)
        if checked is not None:
            if checked.info.kind != "image":
                problems.append(f"{rel}: an input image must be PNG, JPEG or WebP.")
            else:
                entry.image = checked
    return inputs


def _scan_outputs(
    directory: Path, inputs: dict[str, _Input], problems: list[str], warnings: list[str]
) -> dict[str, _Model]:
    models: dict[str, _Model] = {}
    for folder in _visible(directory / "outputs"):
        if not folder.is_dir():
            warnings.append(
                f"outputs/{folder.name}: a file directly in outputs/ is ignored (outputs/<model>/<id>.*)."
            )
            continue
        slug = slugify(folder.name)[:100].strip("-")
        if not slug:
            problems.append(f"outputs/{folder.name}/: the folder name gives no usable model slug.")
            continue
        if slug in models:
            problems.append(
                f"outputs/{folder.name}/: its model slug {slug!r} is the same as "
                f"outputs/{models[slug].folder}/'s."
            )
            continue
        if len(folder.name) > 200:
            problems.append(
                f"outputs/{folder.name[:40]}…/: the model folder name is longer than 200 characters."
            )
            continue
        model = models[slug] = _Model(folder=folder.name, slug=slug)
        for path in _visible(folder):
            rel = f"outputs/{folder.name}/{path.name}"
            if path.is_dir():
                warnings.append(f"{rel}/: a folder inside a model folder is ignored.")
                continue
            key, ext = _split(path.name)
            if ext not in OUTPUT_EXTENSIONS:
                problems.append(
                    f"{rel}: unknown output type {('.' + ext) if ext else '(no extension)'}; expected one of "
                    f"{', '.join('.' + e for e in OUTPUT_EXTENSIONS)}."
                )
                continue
            if key not in inputs:
                problems.append(f"{rel}: an output for id {key!r}, which has no input (inputs/{key}.*).")
                continue
            if key in model.outputs:
                problems.append(
                    f"{rel}: model {folder.name!r} already has an output for {key!r} "
                    f"({model.outputs[key].rel})."
                )
                continue
            checked = _inspect(path, rel, ext, problems)
            if checked is not None:
                model.outputs[key] = checked
    return models


def _modality_check(models: dict[str, _Model], given: str | None, problems: list[str]) -> str:
    files = [f for m in models.values() for f in m.outputs.values()]
    if given is not None:
        wanted = {"image"} if given == Modality.IMAGE else {"mesh", "splat"}
        for f in files:
            if f.info.kind not in wanted:
                problems.append(f"{f.rel}: a {f.info.kind} file in a {given} gallery.")
        return given
    kinds = {f.info.kind for f in files}
    if not kinds:
        return ""
    if kinds == {"image"}:
        return Modality.IMAGE.value
    if "image" not in kinds:
        return Modality.THREE_D.value
    images = sum(f.info.kind == "image" for f in files)
    problems.append(
        f"the outputs mix images ({images}) and 3D files ({len(files) - images}); a gallery is one modality "
        "(pass --modality to say which, and the other files are listed as wrong)."
    )
    return ""


def _plan(
    directory: Path,
    *,
    name: str | None,
    slug: str | None,
    modality: str | None,
    showcase: list[str] | None,
) -> _Plan:
    problems: list[str] = []
    warnings: list[str] = []
    if modality is not None and modality not in MODALITIES:
        raise GalleryRejected([f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}."])
    if not directory.is_dir():
        raise GalleryRejected([f"{directory}: no such directory."])
    missing = [sub for sub in ("inputs", "outputs") if not (directory / sub).is_dir()]
    if missing:
        folders = " or ".join(m + "/" for m in missing)
        layout = "expected inputs/<id>.* and outputs/<model>/<id>.*"
        raise GalleryRejected([f"{directory}: no {folders} folder; {layout}."])
    for path in _visible(directory):
        if path.name not in ("inputs", "outputs"):
            warnings.append(
                f"{path.name}{'/' if path.is_dir() else ''}: not part of the gallery layout; ignored."
            )

    set_name = (name or directory.resolve().name).strip()[:200]
    set_slug = slugify(slug or set_name)[:100].strip("-")
    if not set_slug:
        problems.append("the prompt set needs a slug: pass --slug.")

    inputs = _scan_inputs(directory, problems, warnings)
    if not inputs:
        problems.append("inputs/ holds no prompts.")
    models = _scan_outputs(directory, inputs, problems, warnings)
    # An id whose only input files were refused is reported already; it is no prompt.
    inputs = {key: entry for key, entry in inputs.items() if entry.text or entry.image}
    chosen = _modality_check(models, modality, problems)
    for model in list(models.values()):
        if not model.outputs and not any(p.startswith(f"outputs/{model.folder}/") for p in problems):
            warnings.append(f"outputs/{model.folder}/: no outputs; the model is not imported.")
            del models[model.slug]
    if not any(m.outputs for m in models.values()) and not problems:
        problems.append("outputs/ holds no model outputs.")
    answered = {key for m in models.values() for key in m.outputs}
    for key in sorted(set(inputs) - answered):
        warnings.append(f"inputs/{key}: no model has an output for this prompt.")

    showcase_keys = None
    if showcase is not None:
        showcase_keys = set(showcase)
        for key in sorted(showcase_keys - set(inputs)):
            problems.append(f"--showcase {key}: no such id in inputs/.")

    if chosen and set_slug:
        _database_check(set_slug, chosen, models, problems)
    if problems:
        raise GalleryRejected(problems, warnings)
    return _Plan(
        directory=directory,
        set_slug=set_slug,
        set_name=set_name,
        name_given=name is not None,
        modality=chosen,
        inputs=inputs,
        models=models,
        showcase=showcase_keys,
        warnings=warnings,
    )


def _database_check(set_slug: str, modality: str, models: dict[str, _Model], problems: list[str]) -> None:
    existing_set = PromptSet.objects.filter(slug=set_slug).first()
    if existing_set is not None and existing_set.modality != modality:
        problems.append(
            f"prompt set {set_slug!r} already exists for {existing_set.modality} prompts; "
            f"this gallery is {modality}."
        )
    try:
        backend_validate("gallery", {"gallery": set_slug}, modality)
    except BackendConfigError as exc:
        problems.append(f"gallery models cannot be made: {exc}")
    for entry in ModelEntry.objects.filter(slug__in=list(models)):
        folder = f"outputs/{models[entry.slug].folder}/"
        if entry.backend_kind != "gallery":
            problems.append(
                f"{folder}: model {entry.slug!r} already exists as a {entry.backend_kind!r} model; "
                "gallery outputs can only be added to gallery models (rename the folder)."
            )
        elif entry.modality != modality:
            problems.append(f"{folder}: model {entry.slug!r} already exists as a {entry.modality} model.")
        elif (entry.backend_config or {}).get("gallery") != set_slug:
            problems.append(
                f"{folder}: model {entry.slug!r} already belongs to gallery "
                f"{(entry.backend_config or {}).get('gallery')!r} (rename the folder)."
            )


# --- writing -----------------------------------------------------------------------------------------------


def _read_checked(f: _File) -> bytes:
    """The file as it is stored: read again, unchanged since it was checked, and rewritten (deterministically,
    so its bytes are the ones `f.sha256` describes)."""
    data = f.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != f.source_sha256:
        raise GalleryRejected(
            [f"{f.rel}: the file changed while the gallery was being imported; run it again."]
        )
    return media_accept(data, info=f.source_info)[0]


def _stored_sha256(name: str) -> str | None:
    try:
        return hashlib.sha256(media_read(name)).hexdigest()
    except OSError:
        return None


def gallery_import(
    directory: Path | str,
    *,
    name: str | None = None,
    slug: str | None = None,
    modality: str | None = None,
    showcase: list[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> GalleryReport:
    """Check and import a gallery; raises GalleryRejected (nothing written) listing every problem.

    `showcase`: ids whose prompts are kept out of battles and give the models' leaderboard thumbnails; when
    given it replaces the set's showcase flags, when None new prompts are not showcase and existing ones
    keep theirs.
    """
    from arena.thumbnails import thumbnail_save  # trimesh and numpy: loaded only when a gallery is imported

    say = progress or (lambda line: None)
    plan = _plan(Path(directory), name=name, slug=slug, modality=modality, showcase=showcase)
    report = GalleryReport(
        plan.set_slug, plan.set_name, plan.modality, dry_run=dry_run, warnings=plan.warnings
    )

    prompt_set = PromptSet.objects.filter(slug=plan.set_slug).first()
    report.set_created = prompt_set is None
    old_prompts: dict[str, Prompt] = {}
    old_outputs: dict[tuple[str, str], GalleryOutput] = {}
    if prompt_set is not None:
        old_prompts = {p.gallery_key: p for p in prompt_set.prompts.exclude(gallery_key="")}
        rows = GalleryOutput.objects.filter(prompt__prompt_set=prompt_set).select_related("model", "prompt")
        old_outputs = {(o.model.slug, o.prompt.gallery_key): o for o in rows}
    existing_models = set(
        ModelEntry.objects.filter(slug__in=list(plan.models)).values_list("slug", flat=True)
    )

    written: list[str] = []  # stored during this import: deleted again if it fails
    obsolete: list[str] = []  # replaced files: deleted once the new rows are committed
    try:
        # Prompt images.
        prompt_images: dict[str, str] = {}
        for key, entry in plan.inputs.items():
            old = old_prompts.get(key)
            image_name = old.image if old else ""
            image_changed = False
            if entry.image is not None and (
                not image_name or _stored_sha256(image_name) != entry.image.sha256
            ):
                image_changed = True
                if not dry_run:
                    image_name = media_save(_read_checked(entry.image), entry.image.info, folder="inputs")
                    written.append(image_name)
                    if old and old.image:
                        obsolete.append(old.image)
            elif entry.image is None and image_name:
                image_changed = True
                obsolete.append(image_name)
                image_name = ""
            prompt_images[key] = image_name
            if old is None:
                report.prompts_created += 1
            elif (
                image_changed
                or old.text != entry.text
                or (plan.showcase is not None and old.showcase != (key in plan.showcase))
            ):
                report.prompts_updated += 1
            else:
                report.prompts_unchanged += 1

        # Outputs, model by model: stored (with thumbnails) before the transaction, so it stays short.
        staged: dict[tuple[str, str], dict[str, object]] = {}
        for model in plan.models.values():
            model_report = ModelReport(
                slug=model.slug, folder=model.folder, created=model.slug not in existing_models
            )
            for key, f in model.outputs.items():
                old_output = old_outputs.get((model.slug, key))
                if old_output is not None and old_output.sha256 == f.sha256:
                    model_report.unchanged += 1
                    if not old_output.thumbnail_name and not dry_run:  # an earlier render failed: try again
                        thumb = thumbnail_save(_read_checked(f), f.info)
                        if thumb:
                            written.append(thumb)
                            staged[(model.slug, key)] = {"thumbnail_name": thumb}
                    continue
                if old_output is None:
                    model_report.new += 1
                else:
                    model_report.replaced += 1
                if dry_run:
                    continue
                data = _read_checked(f)
                media_name = media_save(data, f.info, folder="gallery")
                written.append(media_name)
                thumb = thumbnail_save(data, f.info)
                if thumb:
                    written.append(thumb)
                staged[(model.slug, key)] = {
                    "media_name": media_name,
                    "media_format": f.info.format,
                    "media_kind": f.info.kind,
                    "media_meta": f.info.meta,
                    "thumbnail_name": thumb,
                    "sha256": hashlib.sha256(data).hexdigest(),  # what is stored, whatever planning saw
                }
                if old_output is not None:
                    obsolete += [n for n in (old_output.media_name, old_output.thumbnail_name) if n]
            report.models.append(model_report)
            say(model_report.line(dry_run))

        stale = sorted(set(old_prompts) - set(plan.inputs))
        if stale:
            report.warnings.append(
                f"{len(stale)} prompt(s) of the set are no longer in the directory and were kept: "
                f"{', '.join(stale[:10])}" + (" …" if len(stale) > 10 else "")
            )
        if dry_run:
            return report

        with transaction.atomic():
            _write_rows(plan, prompt_set, old_prompts, prompt_images, staged)
            transaction.on_commit(lambda: _delete(obsolete))
    except BaseException:
        _delete(written)
        raise
    return report


def _write_rows(
    plan: _Plan,
    prompt_set: PromptSet | None,
    old_prompts: dict[str, Prompt],
    prompt_images: dict[str, str],
    staged: dict[tuple[str, str], dict[str, object]],
) -> None:
    if prompt_set is None:
        prompt_set = PromptSet.objects.create(
            slug=plan.set_slug,
            name=plan.set_name,
            modality=plan.modality,
            description=f"Pre-generated gallery imported from {plan.directory.resolve().name}/.",
            active=True,
        )
    elif plan.name_given and prompt_set.name != plan.set_name:
        prompt_set.name = plan.set_name
        prompt_set.save(update_fields=["name"])

    prompts: dict[str, Prompt] = {}
    for key, entry in plan.inputs.items():
        prompt = old_prompts.get(key)
        showcase = (
            (key in plan.showcase) if plan.showcase is not None else (prompt.showcase if prompt else False)
        )
        if prompt is None:
            prompt = Prompt.objects.create(
                prompt_set=prompt_set,
                gallery_key=key,
                text=entry.text,
                image=prompt_images[key],
                modality=plan.modality,
                showcase=showcase,
                status=Prompt.Status.APPROVED,
            )
        elif (prompt.text, prompt.image, prompt.showcase) != (entry.text, prompt_images[key], showcase):
            prompt.text, prompt.image, prompt.showcase = entry.text, prompt_images[key], showcase
            prompt.save(update_fields=["text", "image", "showcase"])
        prompts[key] = prompt
    if plan.showcase is not None:  # the set's other prompts (no longer in the directory) are not showcase
        prompt_set.prompts.exclude(gallery_key__in=list(plan.inputs)).filter(showcase=True).update(
            showcase=False
        )

    for model in plan.models.values():
        entry, _created = ModelEntry.objects.get_or_create(
            slug=model.slug,
            defaults={
                "display_name": model.folder,
                "modality": plan.modality,
                "backend_kind": "gallery",
                "backend_config": {"gallery": plan.set_slug},
            },
        )
        for key in model.outputs:
            fields = staged.get((model.slug, key))
            if fields is None:
                continue
            if "media_name" in fields:
                GalleryOutput.objects.update_or_create(prompt=prompts[key], model=entry, defaults=fields)
            else:
                GalleryOutput.objects.filter(prompt=prompts[key], model=entry).update(**fields)


def _delete(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("Could not delete stored file %s", name, exc_info=True)
