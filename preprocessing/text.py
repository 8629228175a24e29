"""Text clean-up shared by training, evaluation and the web layer.

The model sees what people actually wrote: emoji (and their skin-tone and ZWJ sequences)
carry emotion, so only what cannot carry meaning is removed: control characters and runs
of whitespace. A text made only of invisible characters (zero-width spaces and joiners,
variation selectors, lone combining marks) counts as empty. Limits are enforced here so
every caller refuses the same inputs the same way.
"""

from __future__ import annotations

import unicodedata

from errors import InputTooLarge, InvalidInput, UnusableInput

DEFAULT_MAX_CHARS = 5000
#: Raw inputs far over the limit (even allowing for whitespace clean-up) are refused unread.
_RAW_GUARD_FACTOR = 4
_RAW_GUARD_SLACK = 1000


def _is_control(char: str) -> bool:
    """Non-whitespace Cc characters (C0/C1 controls, DEL); Cf stays, since ZWJ builds emoji."""
    return unicodedata.category(char) == "Cc" and not char.isspace()


#: Categories that never make a text readable on their own: format characters (zero-width
#: space/joiners, BOM, bidi marks) and combining or enclosing marks (variation selectors, U+20E3).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


def _is_readable(char: str) -> bool:
    """A character that can carry meaning by itself: not whitespace, not invisible, not a skin tone."""
    if char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return False
    return not _is_skin_tone(char)


def _is_skin_tone(char: str) -> bool:
    return unicodedata.category(char) == "Sk" and "FITZPATRICK" in unicodedata.name(char, "")


def clean_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """NFC-normalise, drop control characters, collapse whitespace; refuse empty or oversized text.

    Control characters are deleted; newlines, tabs and other whitespace become single spaces;
    format characters such as the zero-width joiner are kept, since emoji sequences need them.
    Raises :class:`UnusableInput` (``empty_text``, 422) when nothing readable is left (only
    whitespace or invisible characters) and
    :class:`InputTooLarge` (``text_too_long``, 413) beyond ``max_chars`` characters.
    """
    if not isinstance(text, str):
        raise InvalidInput("The text must be a string.", code="invalid_text")
    if len(text) > max_chars * _RAW_GUARD_FACTOR + _RAW_GUARD_SLACK:
        raise _too_long(len(text), max_chars)
    normalised = unicodedata.normalize("NFC", text)
    without_controls = "".join(ch for ch in normalised if not _is_control(ch))
    cleaned = " ".join(without_controls.split())
    if not cleaned:
        raise UnusableInput("The text is empty: write at least one word or emoji.", code="empty_text")
    if not any(_is_readable(ch) for ch in cleaned):
        raise UnusableInput(
            "The text contains only invisible characters: write at least one word or emoji.", code="empty_text"
        )
    if len(cleaned) > max_chars:
        raise _too_long(len(cleaned), max_chars)
    return cleaned


def _too_long(length: int, max_chars: int) -> InputTooLarge:
    return InputTooLarge(
        f"The text has {length:,} characters; at most {max_chars:,} can be analysed. Shorten it and try again.",
        code="text_too_long",
    )


def decode_text_bytes(data: bytes) -> str:
    """Decode a request body as strict UTF-8 (a leading BOM is allowed) or refuse it clearly.

    Raises :class:`InvalidInput` (``invalid_utf8``, 400) for bytes that are not UTF-8 text,
    rather than guessing an encoding and analysing mojibake.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput("The text body must be bytes.", code="invalid_text")
    try:
        return bytes(data).decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The text is not valid UTF-8 (invalid byte at position {exc.start}); send it encoded as UTF-8.",
            code="invalid_utf8",
        ) from None


def spell_out_emoji(text: str) -> str:
    """Write each emoji as its Unicode name ("😭" -> "loudly crying face") for the model input.

    The encoder's uncased BERT vocabulary has no emoji: without this, every emoji becomes the
    same unknown token and the emotion it carries is lost. Skin-tone modifiers, variation
    selectors, zero-width joiners and flag letters carry no emotion and are dropped.
    """
    if text.isascii():
        return text
    parts: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category == "So" and ord(char) >= 0x2000:
            name = unicodedata.name(char, "")
            if name.startswith("REGIONAL INDICATOR"):
                continue
            parts.append(f" {name.lower()} " if name else " ")
        elif _is_skin_tone(char) or char in _EMOJI_GLUE:
            parts.append(" " if char == "\u200d" else "")
        else:
            parts.append(char)
    return " ".join("".join(parts).split())


_EMOJI_GLUE = frozenset({"\u200d", "\ufe0e", "\ufe0f", "\u20e3"})
