"""``search``: which repositories a registry holds, as ``docker search`` lists them.

There are two search APIs, and neither is the OCI distribution spec's:

- **Docker Hub** keeps its v1 search endpoint, ``GET https://index.docker.io/v1/search?q=TERM
  &n=LIMIT``, which answers ``{"results": [{"name", "description", "star_count",
  "is_official", "is_automated"}, ...]}``. This is what ``docker search TERM`` asks.
- **A private registry** (distribution, Harbor's core, zot) has no search, only the
  ``GET /v2/_catalog`` listing of every repository it holds (paged with ``?n=&last=`` and a
  ``Link: <...>; rel="next"`` header; token servers grant it as ``registry:catalog:*``).
  ``docker search REGISTRY/TERM`` would ask ``REGISTRY``'s v1 search, which such a registry does
  not serve; ``minidocker search REGISTRY/TERM`` lists the catalog instead and keeps the
  repositories whose name contains ``TERM`` (``REGISTRY/`` alone lists them all). Their rows
  are named ``REGISTRY/REPOSITORY``, so a row can be pasted into ``pull`` as it is; a catalog
  has no descriptions or stars.

Which one: as in a reference, a first component holding a ``.`` or ``:`` (or ``localhost``)
is a registry (:func:`minidocker.reference.split_domain`); anything else is a Hub search.
"""

from __future__ import annotations

from typing import Any

from minidocker.errors import RegistryError, UsageError
from minidocker.registry import auth
from minidocker.registry.client import (
    TIMEOUT,
    Registry,
    error_text,
    one_line,
    requests_module,
)

HUB_SEARCH = "https://index.docker.io/v1/search"
DEFAULT_LIMIT = 25  # Docker Hub's default page, and docker search's
MAX_LIMIT = 100  # Hub refuses more
CATALOG_SCOPE = "registry:catalog:*"
CATALOG_PAGE = 1000


class Result:
    """One row of ``docker search``: the fields its ``--format`` templates name."""

    __slots__ = ("name", "description", "star_count", "is_official", "is_automated")

    def __init__(self, name: str, description: str = "", star_count: int = 0,
                 is_official: bool = False, is_automated: bool = False) -> None:
        self.name, self.description, self.star_count = name, description, star_count
        self.is_official, self.is_automated = is_official, is_automated

    def fields(self, truncate: bool = True) -> dict[str, Any]:
        """As docker search's template context: a description on one line, and cut to 45
        characters unless ``--no-trunc``."""
        description = " ".join(self.description.replace("\r", "\n").split("\n"))
        if truncate and len(description) > DESCRIPTION_WIDTH:
            description = description[:DESCRIPTION_WIDTH - 1] + "…"
        return {"Name": self.name, "Description": description,
                "StarCount": self.star_count, "IsOfficial": self.is_official,
                "IsAutomated": self.is_automated}


def split_term(term: str) -> tuple[str, str]:
    """``127.0.0.1:5000/bus`` -> (``127.0.0.1:5000``, ``bus``); ``busybox`` -> (docker.io, ...)."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if first in ("docker.io", "index.docker.io", "registry-1.docker.io"):
            return "docker.io", rest
        return first, rest
    return "docker.io", term


def search(term: str, limit: int = DEFAULT_LIMIT) -> list[Result]:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"invalid limit {limit}: want 1 to {MAX_LIMIT}")
    domain, query = split_term(term)
    if domain == "docker.io":
        if not query:
            raise UsageError("search: a search term is required")
        return search_hub(query, limit)
    return search_catalog(Registry(domain, auth.load_credentials(domain)), query, limit)


# -- Docker Hub ------------------------------------------------------------------------------

def search_hub(query: str, limit: int) -> list[Result]:
    requests = requests_module()
    try:
        response = requests.get(HUB_SEARCH, params={"q": query, "n": str(limit)},
                                timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise RegistryError(f"GET {HUB_SEARCH}: {one_line(exc)}") from None
    if response.status_code != 200:
        raise RegistryError(f"GET {response.url}: {response.status_code} "
                            f"{error_text(response)}")
    try:
        body = response.json()
    except ValueError:
        raise RegistryError(f"GET {response.url}: the answer is not JSON") from None
    return parse_hub(body, response.url)[:limit]


def parse_hub(body: Any, url: str = HUB_SEARCH) -> list[Result]:
    """The rows of a Hub search answer; fields that are missing read as empty, as Docker's."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise RegistryError(f"GET {url}: the answer holds no results list")
    rows = []
    for item in results:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        stars = item.get("star_count")
        rows.append(Result(item["name"], str(item.get("description") or ""),
                           stars if isinstance(stars, int) else 0,
                           bool(item.get("is_official")), bool(item.get("is_automated"))))
    return rows


# -- a private registry's catalog ------------------------------------------------------------

def search_catalog(reg: Registry, query: str, limit: int) -> list[Result]:
    """Every repository whose name contains ``query``, first ``limit`` in catalog order."""
    from urllib.parse import urljoin

    url: str | None = reg.url(f"/v2/_catalog?n={CATALOG_PAGE}")
    rows: list[Result] = []
    while url and len(rows) < limit:
        response = reg.request("GET", url, CATALOG_SCOPE, ok=(200, 404))
        if response.status_code == 404:
            raise RegistryError(f"GET {url}: {reg.domain} has no catalog API "
                                f"({error_text(response)})")
        try:
            names = response.json().get("repositories") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"GET {url}: the answer is not a catalog") from None
        rows += [Result(f"{reg.domain}/{name}") for name in names
                 if isinstance(name, str) and query.lower() in name.lower()]
        following = response.links.get("next", {}).get("url")
        url = urljoin(reg.base + "/", following) if following else None
    return rows[:limit]


# -- the table -------------------------------------------------------------------------------

COLUMNS = (("Name", "NAME"), ("Description", "DESCRIPTION"), ("StarCount", "STARS"),
           ("IsOfficial", "OFFICIAL"))
DESCRIPTION_WIDTH = 45  # docker search truncates descriptions to this, ending in an ellipsis


def cells(result: Result, truncate: bool = True) -> list[str]:
    fields = result.fields(truncate)
    return [result.name, fields["Description"], str(result.star_count),
            "[OK]" if result.is_official else ""]


def keep(result: Result, filters: list[str]) -> bool:
    """``--filter stars=N`` (at least N), ``is-official=true|false``,
    ``is-automated=true|false``, as docker search."""
    for item in filters:
        key, _, value = item.partition("=")
        if key == "stars" and value.isdigit():
            if result.star_count < int(value):
                return False
        elif key in ("is-official", "is-automated") and value.lower() in ("true", "false"):
            flag = result.is_official if key == "is-official" else result.is_automated
            if flag != (value.lower() == "true"):
                return False
        else:
            raise UsageError(f"invalid filter '{item}': search filters on stars=N, "
                             "is-official=true|false and is-automated=true|false")
    return True
