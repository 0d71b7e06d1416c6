"""``record``: the dataclass of the values made per line and per alert.

A frozen dataclass sets each field through ``object.__setattr__``: a
``Notification`` (14 fields) costs 4 µs to make, against 0.6 µs for the same
class unfrozen, and a flood makes a line, a notification, a delivery and a
window state per alert. So a record is frozen for the type checker (mypy
rejects any assignment to its fields, ``dataclasses.replace`` makes a changed
copy) and an ordinary slotted dataclass when it runs, hashable like a frozen
one (by its fields, when they are hashable). Nothing in tailhook assigns to a
record's field; mypy --strict holds it to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["record"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def record(cls: type[_T]) -> type[_T]: ...

else:

    def record(cls: type[_T]) -> Any:
        return dataclass(slots=True, unsafe_hash=True)(cls)
