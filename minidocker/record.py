"""Typed records: keyword fields that compare, print and turn into JSON alike.

The container config (:mod:`minidocker.config`) and the mount requests
(:mod:`minidocker.mounts`) are made of these. Why not :mod:`dataclasses`: importing it costs
``run`` ~7 ms and 18 modules (``inspect``, ``ast``, ``dis``...), a sixth of a start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound="Record")


class Record:
    """Keyword fields (``__slots__``) compared, printed and turned into JSON alike."""

    __slots__: tuple[str, ...] = ()
    # field -> the class its value (or each item of its list) is built from in from_dict
    NESTED: ClassVar[dict[str, Any]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) \
            and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(getattr(self, k)) for k in self.__slots__}

    @classmethod
    def from_dict(cls: type[R], record: Mapping[str, Any]) -> R:
        fields: dict[str, Any] = {}
        for key in cls.__slots__:
            if key not in record:
                continue  # written by an older minidocker: the default holds
            value, kind = record[key], cls.NESTED.get(key)
            if kind is not None and isinstance(value, list):
                value = [kind.from_dict(v) for v in value]
            elif kind is not None and value is not None:
                value = kind.from_dict(value)
            fields[key] = value
        return cls(**fields)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "as_dict"):  # Resources and PortMapping, from their own modules
        return value.as_dict()
    return value
