"""Data-entry noise for synthetic duplicate Patient records: typos, nicknames, case, dates."""

from __future__ import annotations

import random
import unicodedata
from datetime import date

NICKNAMES = {
    "James": "Jim", "John": "Jack", "Robert": "Bob", "Michael": "Mike", "David": "Dave",
    "José": "Pepe", "Liam": "William", "Elizabeth": "Liz", "Patricia": "Pat", "Jennifer": "Jen",
    "Mary": "Molly", "Sofia": "Sophie", "Olivia": "Liv", "Linda": "Lindy", "Mateo": "Matt",
}
# Neighbouring keys on a QWERTY keyboard: the typos people actually make.
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {ch: row[max(0, i - 1):i] + row[i + 1:i + 2]
               for row in _KEYBOARD_ROWS for i, ch in enumerate(row)}


def typo(rng: random.Random, text: str) -> str:
    """One keyboard slip in a letter: a neighbouring key, a dropped or a doubled letter."""
    positions = [i for i, ch in enumerate(text) if ch.lower() in _NEIGHBOURS]
    if len(positions) < 3:
        return text
    i = rng.choice(positions[1:])  # the first letter is the one people get right
    kind = rng.randrange(3)
    if kind == 0:
        slip = rng.choice(_NEIGHBOURS[text[i].lower()])
        return text[:i] + (slip.upper() if text[i].isupper() else slip) + text[i + 1:]
    if kind == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def transpose(rng: random.Random, text: str) -> str:
    """Two adjacent letters swapped (not the first, which people rarely get wrong)."""
    spots = [i for i in range(1, len(text) - 1) if text[i] != text[i + 1]]
    if not spots:
        return text
    i = rng.choice(spots)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def recase(rng: random.Random, text: str) -> str:
    return text.upper() if rng.random() < 0.7 else text.lower()


def strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))


def noisy_name(rng: random.Random, name: str, nickname_share: float = 0.0) -> str:
    """The name as another clerk may have typed it; most often unchanged."""
    roll = rng.random()
    if roll < nickname_share and name in NICKNAMES:
        return NICKNAMES[name]
    roll -= nickname_share
    for share, change in ((0.12, typo), (0.06, transpose)):
        if roll < share:
            return change(rng, name)
        roll -= share
    if roll < 0.08:
        return recase(rng, name)
    if roll < 0.14 and strip_accents(name) != name:
        return strip_accents(name)
    return name


def noisy_birth_date(rng: random.Random, birth: date, latest: date) -> date | None:
    """Mostly unchanged; sometimes day and month swapped, a mistyped day (never after
    `latest`), or not recorded."""
    roll = rng.random()
    if roll < 0.03 and birth.day <= 12 and birth.day != birth.month:
        return birth.replace(month=birth.day, day=birth.month)
    if roll < 0.06:
        day = birth.day + rng.choice((-1, 1, -10, 10))
        if 1 <= day <= 28 and birth.replace(day=day) <= latest:
            return birth.replace(day=day)
    if roll < 0.08:
        return None
    return birth
