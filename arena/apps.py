from django.apps import AppConfig


class ArenaConfig(AppConfig):
    name = "arena"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from arena.models import ModelEntry
        from arena.selectors import candidates_invalidate

        # Any saved change to a model may change who can be drawn: processes drop their remembered candidates.
        def changed(**kwargs: object) -> None:
            candidates_invalidate()

        post_save.connect(changed, sender=ModelEntry, weak=False, dispatch_uid="candidates-save")
        post_delete.connect(changed, sender=ModelEntry, weak=False, dispatch_uid="candidates-delete")
        targets = ModelEntry.battle_targets.through
        m2m_changed.connect(changed, sender=targets, weak=False, dispatch_uid="candidates-targets")
