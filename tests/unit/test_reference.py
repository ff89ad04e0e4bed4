"""Image references: Docker's normalisation, and a one-line error naming each bad value."""

from __future__ import annotations

import pytest

from minidocker.errors import InvalidReference
from minidocker.reference import Reference, parse, split_domain, validate_tag

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("ref", "domain", "path", "tag", "familiar", "canonical"), [
    ("busybox", "docker.io", "library/busybox", "latest", "busybox:latest",
     "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", "busybox:1.36",
     "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", "latest", "busybox:latest",
     "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest",
     "busybox:latest", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", "busybox:latest",
     "docker.io/library/busybox:latest"),
    ("myrepo/app:v1", "docker.io", "myrepo/app", "v1", "myrepo/app:v1",
     "docker.io/myrepo/app:v1"),
    ("localhost:5000/x:1", "localhost:5000", "x", "1", "localhost:5000/x:1",
     "localhost:5000/x:1"),
    ("localhost/x", "localhost", "x", "latest", "localhost/x:latest", "localhost/x:latest"),
    ("ghcr.io/org/team/app:2.0-rc_1", "ghcr.io", "org/team/app", "2.0-rc_1",
     "ghcr.io/org/team/app:2.0-rc_1", "ghcr.io/org/team/app:2.0-rc_1"),
    ("docker.io/library/a/b", "docker.io", "library/a/b", "latest", "library/a/b:latest",
     "docker.io/library/a/b:latest"),
    ("a__b-c---d/e.f", "docker.io", "a__b-c---d/e.f", "latest", "a__b-c---d/e.f:latest",
     "docker.io/a__b-c---d/e.f:latest"),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", "[::1]:5000/x:latest",
     "[::1]:5000/x:latest"),
])
def test_normalisation(ref: str, domain: str, path: str, tag: str, familiar: str,
                       canonical: str) -> None:
    parsed = parse(ref)
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (domain, path, tag, None)
    assert parsed.familiar == familiar == str(parsed)
    assert parsed.canonical == canonical
    assert parse(parsed.canonical) == parsed
    assert parse(parsed.familiar) == parsed


def test_digest_reference_has_no_default_tag() -> None:
    parsed = parse(f"busybox@{DIGEST}")
    assert (parsed.tag, parsed.digest) == (None, DIGEST)
    assert parsed.familiar == f"busybox@{DIGEST}"
    assert parsed.canonical == f"docker.io/library/busybox@{DIGEST}"
    both = parse(f"localhost:5000/x:1@{DIGEST}")
    assert both.canonical == f"localhost:5000/x:1@{DIGEST}"


def test_reference_is_frozen_and_retaggable() -> None:
    parsed = parse("busybox")
    with pytest.raises(AttributeError):
        parsed.tag = "x"
    assert parsed.with_tag("v2").familiar == "busybox:v2"
    assert parsed.name == "docker.io/library/busybox"
    assert parsed.familiar_name == "busybox"
    assert Reference("docker.io", "library/busybox") == parsed


def test_split_domain_needs_a_host_looking_first_component() -> None:
    assert split_domain("foo/bar") == ("docker.io", "foo/bar")
    assert split_domain("foo.com/bar") == ("foo.com", "bar")
    assert split_domain("foo:1/bar") == ("foo:1", "bar")
    assert split_domain("Foo/bar") == ("Foo", "bar")  # capitals: a host, as in Docker


@pytest.mark.parametrize(("ref", "message"), [
    ("", "invalid reference format: image name is empty"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("myrepo/App:1", "invalid reference format: repository name (myrepo/App) must be lowercase"),
    ("busybox:", "invalid reference format: tag is empty in 'busybox:'"),
    ("busybox:a!b", "invalid reference format: tag (a!b) may only contain letters, digits"),
    ("busybox:.x", "invalid reference format: tag (.x) may only contain"),
    ("busybox:" + "t" * 129, f"invalid reference format: tag ({'t' * 129}) is 129 characters "
                             "long, more than 128"),
    ("a:b:c", "invalid reference format: repository name (library/a:b) has an invalid "
              "component 'a:b'"),
    ("a..b", "has an invalid component 'a..b'"),
    ("-a", "has an invalid component '-a'"),
    ("a/", "repository name (a/) has an invalid component ''"),
    ("a b", "has an invalid component 'a b'"),
    (":latest", "invalid reference format: repository name is empty in ':latest'"),
    ("busybox@sha256:abc", "invalid reference format: digest (sha256:abc) must be 'sha256:'"),
    ("busybox@", "invalid reference format: digest () must be"),
    ("foo_bar:5000/x", "invalid reference format: registry (foo_bar:5000) is not a valid "
                       "host[:port]"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal "
               "strings"),
    ("x/" + "a" * 250, "is longer than 255 characters"),
])
def test_bad_references_name_the_value(ref: str, message: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse(ref)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_exactly_128_character_tag_is_fine() -> None:
    assert parse("busybox:" + "t" * 128).tag == "t" * 128


def test_validate_tag() -> None:
    assert validate_tag("v1.0_rc-2") == "v1.0_rc-2"
    for bad in ("", "-x", "a/b", "é", "x" * 129):
        with pytest.raises(InvalidReference, match="invalid reference format: tag"):
            validate_tag(bad)
