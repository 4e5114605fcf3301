"""Record ids and ordering shared by every stage.

Ids say where a record came from: scenario ``sad-<sID>``, story ``sad-<sID>-s<k>``;
explanations and pairs keep their story's id. Ids never depend on processing order.
"""

from __future__ import annotations


def story_id(scenario_id: str, k: int) -> str:
    return f"{scenario_id}-s{k}"


def story_index(record_id: str) -> int:
    """k of a story id ``<scenario id>-s<k>`` (and of the explanation and pair made from it)."""
    return int(record_id.rsplit("-s", 1)[1])


def scenario_id_of(record_id: str) -> str:
    """The scenario a story, explanation or pair id came from (a scenario id is its own)."""
    head, sep, k = record_id.rpartition("-s")
    return head if sep and k.isdigit() else record_id


def sort_key(record_id: str) -> tuple:
    """Natural order of ids: ``sad-9-s2`` < ``sad-10-s0`` < ``sad-10-s10``."""
    return tuple(int(p) if p.isdigit() else p for p in record_id.replace("-s", "-").split("-"))


def sorted_by_id(records):
    return sorted(records, key=lambda r: sort_key(r["id"]))


def rejection(record_id: str, stage: str, reason: str, detail: str = "", **extra) -> dict:
    """The one shape of a dropped record, as it lands in the rejected files. A generation stage's
    rejection is one failed attempt: it also carries ``attempt`` (0: the first draw) and the text
    under its field's name (``story``, ``explanation`` or ``response``)."""
    return {"id": record_id, "stage": stage, "reason": reason, "detail": detail, **extra}
