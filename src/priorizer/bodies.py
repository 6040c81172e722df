"""What node endpoints do with fields their body does not know.

A near miss of a known field (`nodeId`, `node-id` or `node` for `node_id`; `freeSpaceGb` or
`free_space` for `free_space_gb`) is refused with 422 naming the field it meant: ignored, it
would silently change what the call does (a misspelt `node_id` makes a new node per call).
Any other unknown field is ignored on the seed's endpoints (`LenientBody`: /allocate,
/release), as the seed did, so that its clients keep working, and refused on ours
(`StrictBody`: /complete, /fail, /renew), which have no such clients.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# How alike two names must be (difflib's ratio, on lower-case letters and digits) to count
# as one misspelt: one letter off in a name of ten or more.
SIMILARITY = 0.85
# A start of a field's name counts when it is this long (`node`, `free`, `asset`).
MIN_PREFIX = 4


def _squashed(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def meant_field(given: str, known: Iterable[str]) -> str | None:
    """The known field `given` is a near miss of, if any: the same letters in another case or
    with other separators, else the start of a name (the shortest such: `Reason` means
    `reason`, not `reason_code`), else a letter or two off. The same answer whatever the order
    of `known`."""
    squashed = _squashed(given)
    if not squashed:
        return None
    targets = sorted((_squashed(field), field) for field in known)
    for target, field in targets:
        if squashed == target:
            return field
    if len(squashed) >= MIN_PREFIX:
        starts = [(len(target), field) for target, field in targets if target.startswith(squashed)]
        if starts:
            return min(starts)[1]
    best, best_ratio = None, SIMILARITY
    for target, field in targets:
        ratio = difflib.SequenceMatcher(None, squashed, target).ratio()
        if ratio > best_ratio or (ratio == best_ratio and best is None):
            best, best_ratio = field, ratio
    return best


def near_misses(body: dict[str, Any], known: Iterable[str]) -> dict[str, str]:
    """Unknown fields of `body` that stand for a known field the body lacks: {given: meant}."""
    fields = set(known)
    missing = fields - body.keys()
    found = {}
    for given in body.keys() - fields:
        meant = meant_field(given, missing) if isinstance(given, str) else None
        if meant is not None:
            found[given] = meant
    return found


def refuse_near_misses(model: type[BaseModel], body: Any) -> None:
    """Raise the validation error of every near miss in `body`, each at its own field."""
    if not isinstance(body, dict):
        return
    found = near_misses(body, model.model_fields)
    if not found:
        return
    problems = [
        InitErrorDetails(
            type=PydanticCustomError(
                "misspelt_field",
                f"unknown field {given!r}: did you mean {meant!r}?",
                {"field": meant},
            ),
            loc=(given,),
            input=body[given],
        )
        for given, meant in sorted(found.items())
    ]
    raise ValidationError.from_exception_data(model.__name__, problems)


class LenientBody(BaseModel):
    """A seed endpoint's body: near misses refused, other unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _refuse_near_misses(cls, data: Any) -> Any:
        refuse_near_misses(cls, data)
        return data


class StrictBody(LenientBody):
    """Our endpoints' bodies: near misses named, every other unknown field refused too."""

    model_config = ConfigDict(extra="forbid")
