"""Which image of an index: ``os/architecture[/variant]``, as ``docker pull --platform``.

A multi-platform tag points at an *image index* (OCI) or *manifest list* (Docker), a list of
manifest descriptors each with a ``platform``. The client picks the one for its machine, or
the one ``--platform`` names. Entries for ``unknown/unknown`` are build attestations
(BuildKit's provenance and SBOMs), not images, and are never chosen.

Architectures use Go's names (``amd64``, ``arm64``, ``arm``), variants the CPU generation
(``v7`` for 32-bit ARM; ``arm64`` is ``v8`` whether or not the index says so).
"""

from __future__ import annotations

from typing import Any

from minidocker.errors import ImageError, UsageError


class Platform:
    """A wanted ``os/architecture[/variant]``. ``variant`` None: any (preferring none)."""

    __slots__ = ("os", "architecture", "variant")

    def __init__(self, os: str, architecture: str, variant: str | None = None) -> None:
        self.os, self.architecture, self.variant = os, architecture, variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Platform) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse_platform(text: str) -> Platform:
    """``linux/arm64/v8`` -> Platform; ``linux`` alone means the host's architecture."""
    parts = text.strip().lower().split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise UsageError(f"invalid platform '{text}': want os[/arch[/variant]], "
                         "e.g. linux/amd64 or linux/arm/v7")
    if len(parts) == 1:
        return Platform(parts[0], host_platform().architecture, host_platform().variant)
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def host_platform() -> Platform:
    from minidocker.store import host_architecture

    arch = host_architecture()
    variant = {"arm64": "v8"}.get(arch)
    if arch == "arm":
        import os

        variant = "v" + os.uname().machine[len("armv")]  # armv7l -> v7
    return Platform("linux", arch, variant)


def _variant(platform: dict[str, Any]) -> str | None:
    variant = platform.get("variant") or None
    if variant is None and platform.get("architecture") == "arm64":
        return "v8"  # arm64 without a variant is v8, as containerd's platforms package says
    return variant if isinstance(variant, str) else None


def choose(index: dict[str, Any], want: Platform, label: str) -> dict[str, Any]:
    """The descriptor in ``index`` for ``want``; ImageError naming the platform if none."""
    candidates = []
    for descriptor in index.get("manifests") or []:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("platform"), dict):
            continue
        platform = descriptor["platform"]
        if platform.get("os") != want.os or platform.get("architecture") != want.architecture:
            continue
        have = _variant(platform)
        wanted = want.variant or (_variant({"architecture": want.architecture}))
        if want.variant is not None and have != wanted:
            continue
        # Without a wanted variant, one equal to the default comes first, then the others.
        candidates.append((have != wanted, descriptor))
    if not candidates:
        raise ImageError(f"no matching manifest for {want} in the manifest list entries "
                         f"of {label}")
    candidates.sort(key=lambda pair: pair[0])  # stable: the index's own order otherwise
    return candidates[0][1]
