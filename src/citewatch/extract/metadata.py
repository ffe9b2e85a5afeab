"""Profile metadata helpers: publication dates and author lists in the forms profiles use.

The publication date matters downstream (the best Wayback snapshot is the one at or before it), so
dates are parsed strictly: a string that is not clearly a date gives ``None``, never a guess.

>>> parse_date("Nov 1, 2023"), parse_date("1 November 2023"), parse_date("2023-11-01T09:00:00Z")
('2023-11-01', '2023-11-01', '2023-11-01')
>>> parse_date("D:20231101120000+00'00'")
'2023-11-01'
>>> split_authors("Hamdi Malik, Crispin Smith and Michael Knights")
['Hamdi Malik', 'Crispin Smith', 'Michael Knights']
"""

from __future__ import annotations

import datetime as dt
import re

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?", re.I)
_PDF = re.compile(r"D:(\d{4})(\d{2})(\d{2})")
_MDY = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})")
_DMY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})")
_LABEL = re.compile(
    r"^\W*(?:published|publication date|date|posted|updated)\s*(?:on)?\s*[:\-–]?\s*", re.I
)
_AUTHOR_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.I)


def _date(year: str, month: int | str, day: str) -> str | None:
    if isinstance(month, str):
        number = _MONTHS.get(month.lower())
        if number is None:
            return None
        month = number
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def parse_date(text: str) -> str | None:
    """An ISO date from a whole string: ISO (with time), ``Nov 1, 2023``, ``1 Nov 2023``, PDF ``D:``."""
    value = _LABEL.sub("", text.strip()).strip().rstrip(".")
    if m := _ISO.fullmatch(value):
        return _date(m.group(1), int(m.group(2)), m.group(3))
    if m := _PDF.match(value):
        return _date(m.group(1), int(m.group(2)), m.group(3))
    if m := _MDY.fullmatch(value):
        return _date(m.group(3), m.group(1), m.group(2))
    if m := _DMY.fullmatch(value):
        return _date(m.group(3), m.group(2), m.group(1))
    return None


def has_date_label(text: str) -> bool:
    """``Published: …`` style lines."""
    return bool(_LABEL.match(text)) and _LABEL.sub("", text).strip() != text.strip()


def split_authors(text: str) -> list[str]:
    """``A, B and C`` → ``[A, B, C]`` (empty parts dropped, order kept, no duplicates)."""
    names: list[str] = []
    for part in _AUTHOR_SPLIT.split(text.strip()):
        name = part.strip(" *_.")
        if name and name not in names:
            names.append(name)
    return names
