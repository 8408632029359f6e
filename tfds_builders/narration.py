"""Cleaning of Ego4D narrations and EgoExo4D atomic descriptions.

Raw texts look like ``"#C C opens the fridge"`` (Ego4D; ``#C`` tags an action of the camera
wearer, ``#O`` of someone else) or ``"C stirs the pan with the spatula."`` (EgoExo4D, where
``C`` is the camera wearer). The PRIMUS reference removed ``"#C C "`` and then *every*
upper-case ``C`` in the string, turning "CPR manikin" into "pr manikin"; here only the leading
tag and the leading subject token are removed.
"""

from __future__ import annotations

import re
import string

MAX_CHARS = 128  # as the reference: CLIP's tokenizer truncates at 77 tokens anyway

_TAG = re.compile(r"^\s*#\s*[CcOo]\b\s*")  # leading "#C" / "#O" tag
_SUBJECT = re.compile(r"^C\s+")  # leading camera-wearer token "C"
_TAGGED_SUBJECT = re.compile(r"^[Cc]\s+")  # after a "#C" tag the token may be lower case
_UNSURE = re.compile(r"#\s*unsure", re.IGNORECASE)
_OTHER_TAGS = re.compile(r"#\w+")  # e.g. "#summary"; no meaning to a text encoder
_SPACES = re.compile(r"\s+")


# Which narrations/descriptions a builder keeps (``SegmentConfig.narrators``): only those of
# the camera wearer, who wears the IMU (Ego4D ``#C``, EgoExo4D ``subject == "C"``), or all.
NARRATOR_POLICIES = ("wearer", "all")


def check_narrators(policy: str) -> str:
    """``policy`` if it is one of ``NARRATOR_POLICIES``; else a ValueError naming the key."""
    if policy not in NARRATOR_POLICIES:
        raise ValueError(f"narrators={policy!r}: must be one of {NARRATOR_POLICIES}")
    return policy


def is_camera_wearer(text: str) -> bool:
    """Whether an Ego4D narration describes the camera wearer (``#C``), who wears the IMU."""
    return bool(re.match(r"^\s*#\s*[Cc]\b", text))


def clean_narration(text: str, max_chars: int = MAX_CHARS) -> str:
    """Removes annotation tags and normalises a narration.

    Steps: drop a leading ``#C``/``#O`` tag; replace ``#unsure`` by "something" (as the
    reference); drop other ``#tags``; drop a leading subject ``C``; collapse whitespace; strip
    surrounding whitespace and punctuation; lower-case; truncate to ``max_chars`` at a word
    boundary when possible.

    Returns:
        The cleaned text, possibly ``""``.
    """
    s, tagged = _TAG.subn("", text)
    s = _UNSURE.sub("something", s)
    s = _OTHER_TAGS.sub("", s).strip()
    s = (_TAGGED_SUBJECT if tagged else _SUBJECT).sub("", s)
    s = _SPACES.sub(" ", s).strip().strip(string.punctuation + string.whitespace).lower()
    if len(s) > max_chars:
        cut = s[:max_chars]
        s = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return s
