"""Registry: ``minidocker pull`` against ``skopeo copy docker://... oci:...``, side by side.

The image: five layers of random data, about 50 MB in all, written as an OCI layout here and
pushed with skopeo to a ``docker-registry`` started on 127.0.0.1 with a config of its own
(tests/registry_server.py), stopped by its pid at the end. skopeo gzips the layers as it
pushes them (random data does not shrink), so the registry serves ``tar+gzip`` layers, as
registries usually do.

Each round, interleaved and in rotating order, into an empty destination each time:

- ``skopeo copy docker://REF oci:DIR:bench`` (the reference the issue names: the containers
  project's own copier). It fetches and verifies the blobs and writes an OCI layout; it does
  not unpack anything;
- ``skopeo copy`` then ``umoci unpack --image DIR:bench BUNDLE``: the same pull and the
  unpack a runtime needs, by the field's own tools. This is the pair that does the work
  ``minidocker pull`` does;
- ``minidocker pull -q REF`` into a fresh state root, with the venv's interpreter: fetches and
  verifies the same blobs, unpacks each layer as it arrives and checks its diff ID (as
  ``docker pull`` does).

Wall-clock medians, p10/p90, and CPU (user + system, of the process and its children); the
ratios against both references (target: at most 1.2 against skopeo alone). Other work on the
machine stretches wall-clock times most for single-threaded Python: the CPU columns say what
each tool costs. Run as root:

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


def timed(argvs: list[list[str]], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run the commands one after the other: wall-clock seconds, and CPU seconds (user and
    system, children included)."""
    import resource

    os.sync()  # the previous round's writes are not this sample's
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for argv in argvs:
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {result.returncode}: "
                             f"{result.stderr.strip()}")
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


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
        timed([[*skopeo, "copy", "--dest-tls-verify=false", f"oci:{work / 'layout'}:bench",
                f"docker://{ref}"]])
        names = ("minidocker", "skopeo", "skopeo+umoci")
        samples: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}

        def run(name: str, i: int) -> None:
            dest = work / f"{name}-{i}"
            env = None
            copy = [*skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{dest}:bench"]
            if name == "skopeo":
                argvs = [copy]
            elif name == "skopeo+umoci":
                argvs = [copy, ["umoci", "unpack", "--image", f"{dest}:bench",
                                str(dest) + "-bundle"]]
            else:
                argvs = [[str(PYTHON), "-m", "minidocker", "pull", "-q", ref]]
                env = {**os.environ, "MINIDOCKER_ROOT": str(dest), "PYTHONPATH": str(REPO)}
            took, used = timed(argvs, env)
            if i >= 0:
                samples[name].append(took)
                cpu[name].append(used)
            shutil.rmtree(dest)
            shutil.rmtree(str(dest) + "-bundle", ignore_errors=True)

        for name in names:  # warm-up: page cache, registry, imports
            run(name, -1)
        for i in range(args.n):
            for k in range(len(names)):
                run(names[(i + k) % len(names)], i)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    stats = {name: summary(s) for name, s in samples.items()}
    cpus = {name: statistics.median(s) for name, s in cpu.items()}
    md = stats["minidocker"]["median"]
    ratio = md / stats["skopeo"]["median"]
    ratios = {"wall vs skopeo": ratio,
              "wall vs skopeo+umoci": md / stats["skopeo+umoci"]["median"],
              "cpu vs skopeo": cpus["minidocker"] / cpus["skopeo"],
              "cpu vs skopeo+umoci": cpus["minidocker"] / cpus["skopeo+umoci"]}
    size = LAYERS * LAYER_BYTES / 1e6
    out = sys.stderr if args.json else sys.stdout
    print(f"pull of a {LAYERS}-layer image, {size:.0f} MB (gzip), from docker-registry on "
          f"127.0.0.1; {args.n} rounds, interleaved", file=out)
    for name, st in stats.items():
        print(f"  {name:<13} median {st['median'] * 1000:7.0f} ms   p10 {st['p10'] * 1000:7.0f}"
              f"   p90 {st['p90'] * 1000:7.0f}   cpu {cpus[name] * 1000:7.0f} ms", file=out)
    for what, value in ratios.items():
        print(f"  minidocker, {what}: {value:.2f}x", file=out)
    print(f"  (target: wall vs skopeo <= {TARGET})", file=out)
    if args.json:
        print(json.dumps({"samples": samples, "cpu": cpu, "stats": stats, "ratios": ratios}))
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
