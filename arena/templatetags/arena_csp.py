"""`{% importmap %}`: the page's one inline script, whose hash the Content-Security-Policy allows."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from arena.security_headers import importmap_text

register = template.Library()


@register.simple_tag
def importmap() -> SafeString:
    # The text between the tags must be exactly importmap_text(): the policy allows it by its SHA-256.
    return mark_safe(f'<script type="importmap">{importmap_text()}</script>')
