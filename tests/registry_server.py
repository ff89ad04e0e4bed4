"""Real registries for the tests and benchmarks: Debian's ``docker-registry`` on 127.0.0.1, and
a small token issuer for its bearer-token mode.

Each registry is started with a config of its own (never the packaged one: that listens on
every interface), its storage under ``home``, on a free loopback port, and stopped by its pid.
Give ``home`` the session's state-root mark (``TEST_ROOT_MARK``): its config path is on the
registry's command line, so the session's leak check sees one left running.

The token issuer is what Docker Hub's ``auth.docker.io`` is, in a hundred lines: it answers
``GET /token?service=S&scope=repository:NAME:pull,push`` (anonymously or with basic
credentials) with a JWT that the registry checks offline, against the certificate in its
``rootcertbundle``. The JWT is the one distribution's ``registry/auth/token`` verifies:

- header ``{"typ": "JWT", "alg": "ES256" | "RS256", "x5c": [<the issuer's cert, DER, base64>]}``:
  the registry verifies the certificate chains to its root bundle, then the signature with the
  certificate's key (ES256: the raw ``r || s``, 64 bytes; RS256: PKCS #1 v1.5 over SHA-256);
- claims ``iss`` (the config's ``issuer``), ``aud`` (its ``service``), ``exp``/``nbf``/``iat``,
  and ``access``: ``[{"type": "repository", "name": NAME, "actions": ["pull"]}]`` -- what
  the registry then allows, whatever the client asked for.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
SERVICE = "minidocker-test-registry"
ISSUER = "minidocker-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackHTTP:
    """A threaded HTTP server on a free port of 127.0.0.1 serving ``handler``, until close()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class RegistryServer:
    """A docker-registry on 127.0.0.1:<port>, with its own config and storage under ``home``.

    ``htpasswd``: basic auth with that file's users; ``token``: bearer tokens from that issuer;
    ``proxy``: a pull-through cache of the registry at that URL (distribution's proxy mode).
    """

    def __init__(self, home: Path, htpasswd: str | None = None,
                 token: TokenIssuer | None = None, proxy: str | None = None,
                 port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.domain = f"127.0.0.1:{self.port}"
        extra = ""
        if htpasswd is not None:
            (home / "htpasswd").write_text(htpasswd)
            extra = f"auth:\n  htpasswd:\n    realm: test\n    path: {home / 'htpasswd'}\n"
        elif token is not None:
            extra = (f"auth:\n  token:\n    realm: {token.realm}\n    service: {SERVICE}\n"
                     f"    issuer: {ISSUER}\n    rootcertbundle: {token.cert_path}\n")
        if proxy is not None:
            extra += f"proxy:\n  remoteurl: {proxy}\n"
        self.config = home / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {home / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.domain}\n  secret: minidocker-tests\n{extra}")
        self.log_path = home / "registry.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen([REGISTRY, "serve", str(self.config)], stdout=self.log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise AssertionError(f"docker-registry exited: {self.log_path.read_text()}")
            try:
                urllib.request.urlopen(f"http://{self.domain}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("docker-registry did not answer on /v2/ within 15 s")

    def stop(self) -> None:
        """Stop it by its pid (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# -- the token issuer -------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A token server on 127.0.0.1: anonymous users may pull anything; ``users`` maps a name
    to (password, the actions that user may do). A wrong password is refused with 401."""

    def __init__(self, home: Path, users: dict[str, tuple[str, list[str]]],
                 algorithm: str = "ES256") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID

        self.users, self.algorithm = users, algorithm
        self.asked: list[tuple[str | None, list[str]]] = []  # (account, scopes) per request
        if algorithm == "ES256":
            self.key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = \
                ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported algorithm {algorithm}")
        import datetime

        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = home / "token-root.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                status, body = issuer.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.http = LoopbackHTTP(Handler)
        self.realm = f"http://{self.http.address}/token"

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, object]]:
        """The token endpoint: who is asking, for which scopes; then a token for what they
        may do of that (possibly less than asked: the registry, not the issuer, refuses)."""
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/token" or query.get("service") != [SERVICE]:
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": "bad token request"}]}
        account, allowed = None, ["pull"]
        if authorization:
            user, _, password = base64.b64decode(
                authorization.removeprefix("Basic ")).decode().partition(":")
            if user not in self.users or self.users[user][0] != password:
                self.asked.append((user, query.get("scope", [])))
                return 401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "incorrect username or password"}]}
            account, allowed = user, self.users[user][1]
        scopes = query.get("scope", [])
        self.asked.append((account, scopes))
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in allowed]
            if kind == "repository" and granted:
                access.append({"type": kind, "name": name, "actions": granted})
        token = self.sign({"iss": ISSUER, "sub": account or "", "aud": SERVICE,
                           "exp": int(time.time()) + 300, "nbf": int(time.time()) - 5,
                           "iat": int(time.time()), "jti": _b64url(time.time_ns().to_bytes(8)),
                           "access": access})
        return 200, {"token": token, "access_token": token, "expires_in": 300}

    def sign(self, claims: dict[str, object]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"typ": "JWT", "alg": self.algorithm,
                  "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode())).encode()
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32) + s.to_bytes(32)  # JWS wants r || s, not DER
        else:
            assert isinstance(self.key, rsa.RSAPrivateKey)
            signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64url(signature)

    def close(self) -> None:
        self.http.close()
