"""The one check every entry applies to text a visitor sends: Unicode that encodes as UTF-8, without NUL.

Python strings can hold lone surrogates (``"\\ud800"``), which JSON's ``\\uXXXX`` escapes let a client send.
Such a string cannot be stored in PostgreSQL, written to a log or sent to a model server: left unchecked it
fails later, as a 500 or as a failed generation that counts against the model. Every entry point (services,
request parsing, websocket messages) calls :func:`text_clean`, so the visitor gets a clear 400 instead.

Text that is not the visitor's to fix (a model's streamed answer) goes through :func:`text_storable`, which
replaces what cannot be stored instead of refusing it.
"""

from __future__ import annotations

from arena.errors import InvalidInput

__all__ = ["text_clean", "text_storable", "text_valid"]


def text_valid(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 and holds no NUL (which PostgreSQL text columns refuse)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def text_clean(value: str, *, field: str, max_chars: int | None = None) -> str:
    """Return ``value`` unchanged when it is storable text, else raise :class:`InvalidInput` naming ``field``.

    ``max_chars`` (optional) bounds the length in characters; the message says the limit so the visitor can
    shorten the text. The value is never echoed back: it may be what broke the check.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    if not text_valid(value):
        raise InvalidInput(
            f"{field} contains characters that are not valid text (a NUL or an unpaired surrogate)."
        )
    if max_chars is not None and len(value) > max_chars:
        raise InvalidInput(f"{field} is too long (at most {max_chars:,} characters).")
    return value


def text_storable(value: str) -> str:
    """``value`` with NUL and unpaired surrogates replaced by U+FFFD, so it can be stored and sent as UTF-8.

    For text nobody can be asked to fix: a model's answer may hold either (a JSON ``\\ud800`` escape in its
    stream), and a prompt can ask a model to write them; failing the write would count against the model.
    """
    if text_valid(value):
        return value  # the common case: one encode, no copy
    # Through UTF-16: a surrogate pair split into two code points joins again, a lone one becomes one U+FFFD.
    cleaned = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return cleaned.replace("\x00", "\ufffd")
