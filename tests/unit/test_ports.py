"""``-p`` parsing, with Docker's rules and messages (go-connections ``nat.ParsePortSpec``)."""

from __future__ import annotations

import pytest

from minidocker import ports
from minidocker.errors import UsageError
from minidocker.ports import PortMapping as M

pytestmark = pytest.mark.nb06


@pytest.mark.parametrize("raw, want", [
    ("80", [M(80, "tcp", "", "")]),
    ("8080:80", [M(80, "tcp", "", "8080")]),
    ("127.0.0.1:8080:80", [M(80, "tcp", "127.0.0.1", "8080")]),
    ("127.0.0.1::80", [M(80, "tcp", "127.0.0.1", "")]),
    ("53:53/udp", [M(53, "udp", "", "53")]),
    ("9:9/sctp", [M(9, "sctp", "", "9")]),
    ("80/UDP", [M(80, "udp", "", "")]),
    ("80/", [M(80, "tcp", "", "")]),
    ("8000-8001:80-81", [M(80, "tcp", "", "8000"), M(81, "tcp", "", "8001")]),
    ("80-81", [M(80, "tcp", "", ""), M(81, "tcp", "", "")]),
    ("8000-8010:80", [M(80, "tcp", "", "8000-8010")]),
    ("[::1]:8080:80", [M(80, "tcp", "::1", "8080")]),
    ("[::]::80/udp", [M(80, "udp", "::", "")]),
    ("::1:8080:80", [M(80, "tcp", "::1", "8080")]),  # Docker's split takes all but two parts
    ("0.0.0.0:08080:80", [M(80, "tcp", "0.0.0.0", "8080")]),
])
def test_every_form_docker_accepts(raw: str, want: list[M]) -> None:
    assert ports.parse_spec(raw) == want


@pytest.mark.parametrize("raw, message", [
    ("", "no port specified: <empty>"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("abc", "invalid containerPort: abc"),
    ("0", "invalid containerPort: 0"),
    ("65536", "invalid containerPort: 65536"),
    ("x:80", "invalid hostPort: x"),
    ("90-80:80", "invalid hostPort: 90-80"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and "
                        "8000-8002"),
    ("80/icmp", "invalid proto: icmp"),
    ("80/tcp/udp", "invalid proto: tcp/udp"),  # the protocol is all after the first "/"
    ("8080:80/udp/", "invalid proto: udp/"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("256.0.0.1:80:80", "invalid IP address: 256.0.0.1"),
    ("[::1:8080:80", "invalid IP address [::1: missing ']' in address"),
    ("localhost:80:80", "invalid IP address: localhost"),
])
def test_bad_forms_get_one_line_errors(raw: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        ports.parse_spec(raw)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_long_form_is_converted_as_docker_does() -> None:
    assert ports.parse_publish(["published=8080,target=80,protocol=udp"]) == [
        M(80, "udp", "", "8080")]
    assert ports.parse_publish(["target=80"]) == [M(80, "tcp", "", "")]
    with pytest.raises(UsageError, match="should be name=value but got 'mode'"):
        ports.parse_publish(["target=80,mode"])


def test_publish_all_uses_exposed_ports_and_p_wins() -> None:
    exposed = ports.publish_all(["80/tcp", "53/udp"])
    assert exposed == [M(80, "tcp"), M(53, "udp")]
    merged = ports.merge([M(80, "tcp", "", "8080")], exposed)
    assert merged == [M(80, "tcp", "", "8080"), M(53, "udp")]


def test_expose_ranges() -> None:
    assert ports.parse_expose(["80", "7000-7001/udp"]) == ["80/tcp", "7000/udp", "7001/udp"]
    with pytest.raises(UsageError, match="invalid range format for --expose"):
        ports.parse_expose(["x"])


def test_mapping_round_trips_and_formats() -> None:
    m = M(80, "udp", "127.0.0.1", "8000-8010")
    assert M.from_dict(m.as_dict()) == m
    assert ports.format_binding("::", 8080) == "[::]:8080"
    assert ports.format_binding("0.0.0.0", 8080) == "0.0.0.0:8080"
