"""Registry: ``minidocker pull`` against ``skopeo copy docker://... oci:...``, side by side.

The image: five layers of random data (incompressible, so gzip would only cost time: plain
tar layers), about 50 MB in all, written as an OCI layout here and pushed with skopeo to a
``docker-registry`` started on 127.0.0.1 with a config of its own (tests/registry_server.py),
stopped by its pid at the end.

Each round, interleaved and in alternating order, into an empty destination each time:

- ``skopeo copy docker://REF oci:DIR:bench`` (the reference: the containers project's own
  copier; it fetches and verifies the blobs and writes an OCI layout);
- ``minidocker pull -q REF`` into a fresh state root, with the venv's interpreter: fetches and
  verifies the same blobs, then unpacks each layer and checks its diff ID (more work than
  skopeo does, as ``docker pull`` does).

Medians, p10/p90 and the ratio (target: at most 1.2). Run as root:

    sudo .venv/bin/python benchmarks/registry.py [-n 7] [--json] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PYTHON = REPO / ".venv" / "bin" / "python"
LAYERS, LAYER_BYTES = 5, 10 << 20
TARGET = 1.2


def make_layout(root: Path) -> None:
    """An OCI layout of five random-data layers, tagged ``bench``."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layers, diff_ids = [], []
    for i in range(LAYERS):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size, info.mtime = LAYER_BYTES, 1_600_000_000
            tar.addfile(info, io.BytesIO(os.urandom(LAYER_BYTES)))
        layer = put(buf.getvalue())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer})
        diff_ids.append(layer["digest"])
    config = put(json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Cmd": ["/data"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
    manifest = put(json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          **config},
                               "layers": layers}).encode())
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # the previous round's writes are not this sample's
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return elapsed


def summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=10) if len(samples) > 1 else samples * 9
    return {"median": statistics.median(samples), "p10": q[0], "p90": q[-1]}


def main() -> int:
    from tests.registry_server import RegistryServer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--json", action="store_true", help="results as JSON on stdout")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if the ratio > {TARGET}")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="md-bench-registry-"))
    server = None
    try:
        make_layout(work / "layout")
        (work / "registry").mkdir()
        server = RegistryServer(work / "registry")
        ref = f"{server.domain}/bench/random:1"
        policy = work / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        skopeo = ["skopeo", "--policy", str(policy)]
        timed([*skopeo, "copy", "--dest-tls-verify=false", f"oci:{work / 'layout'}:bench",
               f"docker://{ref}"])
        samples: dict[str, list[float]] = {"minidocker": [], "skopeo": []}

        def run(name: str, i: int) -> None:
            dest = work / f"{name}-{i}"
            if name == "skopeo":
                argv = [*skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{dest}:bench"]
                env = None
            else:
                argv = [str(PYTHON), "-m", "minidocker", "pull", "-q", ref]
                env = {**os.environ, "MINIDOCKER_ROOT": str(dest), "PYTHONPATH": str(REPO)}
            took = timed(argv, env)
            if i >= 0:
                samples[name].append(took)
            shutil.rmtree(dest)

        for name in ("minidocker", "skopeo"):  # warm-up: page cache, registry, imports
            run(name, -1)
        for i in range(args.n):
            for name in (("minidocker", "skopeo") if i % 2 == 0 else ("skopeo", "minidocker")):
                run(name, i)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    stats = {name: summary(s) for name, s in samples.items()}
    ratio = stats["minidocker"]["median"] / stats["skopeo"]["median"]
    size = LAYERS * LAYER_BYTES / 1e6
    out = sys.stderr if args.json else sys.stdout
    print(f"pull of a {LAYERS}-layer image, {size:.0f} MB, from docker-registry on 127.0.0.1; "
          f"{args.n} rounds, interleaved", file=out)
    for name, st in stats.items():
        print(f"  {name:<11} median {st['median'] * 1000:7.0f} ms   p10 {st['p10'] * 1000:7.0f}"
              f"   p90 {st['p90'] * 1000:7.0f}", file=out)
    print(f"  minidocker / skopeo: {ratio:.2f}x (target <= {TARGET})", file=out)
    if args.json:
        print(json.dumps({"samples": samples, "stats": stats, "ratio": ratio}))
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
