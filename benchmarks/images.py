"""Images: unpacking a 5-layer image side by side with ``umoci unpack``, and ``images`` at 100.

Two measurements, each against a reference or a budget, in one run:

1. **unpack** -- a generated image of five gzip layers, ~94 MB unpacked, with whiteouts, an
   opaque directory, hard links and symlinks, written as an OCI image layout. Each round,
   interleaved and in alternating order:

   - ``umoci unpack --image LAYOUT:bench BUNDLE`` (the reference: umoci is the OCI project's
     own tool; it applies the layers to one rootfs and writes an mtree manifest of it);
   - minidocker's first use of the same image: a fresh state root whose ``images/`` is the
     layout (hard-linked: not timed), then a new interpreter that resolves the image and
     unpacks its layers (``ImageStore.resolve(...).layer_dirs()``, the path ``minidocker run``
     takes on a cache miss), verifying every blob's digest and every layer's diff ID;
   - with ``--load``, also ``minidocker load -i LAYOUT`` (copies the blobs into the store
     first: the cost of a user-facing import).

   Once, the two results are compared: the files umoci's rootfs holds are exactly what
   minidocker's layers show merged (:class:`minidocker.layers.Stack`).

2. **images** -- ``minidocker images`` (the launcher, as users run it) in a store holding 100
   images; the budget is 100 ms.

Medians, p10 and p90, and the ratio to umoci in the same run (target: at most 1). Each
sample starts after sync(2), so that writing back the previous round's files does not land in
it. Run as root with the venv's interpreter:

    sudo .venv/bin/python benchmarks/images.py [-n 7] [--load] [--json] [--check]

Man pages: umoci-unpack(1), gzip(1); the OCI image-spec's ``layer.md`` (whiteouts).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
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
LAUNCHER = Path("/usr/local/bin/minidocker")
PYTHON = REPO / ".venv" / "bin" / "python"
REF = "bench"
MTIME = 1_600_000_000


# -- the image -------------------------------------------------------------------------------

class LayerBuilder:
    """A layer tar built in memory."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w",  # noqa: SIM115 -- closed in done()
                                format=tarfile.PAX_FORMAT)

    def dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
        self.tar.addfile(info)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, MTIME
        self.tar.addfile(info, io.BytesIO(data))

    def link(self, name: str, target: str, hard: bool = False) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname, info.mode, info.mtime = target, 0o777, MTIME
        self.tar.addfile(info)

    def done(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


_WORDS = b"the quick brown fox jumps over a lazy dog while containers share layers ".split()


def content(rng: random.Random, size: int) -> bytes:
    """A third random bytes, the rest text-like: gzip shrinks it about as much as it does a
    real image (2-3x)."""
    noise = rng.randbytes(size // 3)
    text = b" ".join(rng.choices(_WORDS, k=size // 5))
    return (noise + text)[:size].ljust(size, b".")


def build_layers(seed: int = 6) -> list[bytes]:
    """Five layers, ~100 MB unpacked in all, whiteouts and an opaque directory among them."""
    rng = random.Random(seed)
    layers = []
    base = LayerBuilder()  # ~45 MB: a "distribution"
    for d in ("bin", "etc", "lib", "usr", "usr/share", "usr/share/doc", "var", "var/cache"):
        base.dir(d)
    for i in range(1500):
        base.file(f"usr/share/doc/pkg{i:04}/README", content(rng, 6000))
    for i in range(60):
        base.file(f"lib/lib{i:02}.so", content(rng, 500_000), 0o755)
    for i in range(200):
        base.file(f"var/cache/c{i:03}", content(rng, 10_000))
    base.file("bin/tool", content(rng, 2_000_000), 0o755)
    base.link("bin/tool-alias", "tool")
    base.file("etc/config", b"version=1\n")
    layers.append(base.done())
    second = LayerBuilder()  # ~20 MB: upgrades, and deletions
    for i in range(0, 60, 3):
        second.file(f"lib/lib{i:02}.so", content(rng, 700_000), 0o755)
    for i in range(0, 1500, 5):
        second.file(f"usr/share/doc/.wh.pkg{i:04}", b"")
    second.file("etc/.wh.config", b"")
    second.file("etc/config.new", b"version=2\n")
    layers.append(second.done())
    third = LayerBuilder()  # ~15 MB: the cache replaced wholesale (an opaque directory)
    third.file("var/cache/.wh..wh..opq", b"")
    for i in range(100):
        third.file(f"var/cache/n{i:03}", content(rng, 150_000))
    layers.append(third.done())
    fourth = LayerBuilder()  # ~12 MB: an application, with hard links
    fourth.dir("app")
    fourth.file("app/server", content(rng, 8_000_000), 0o755)
    fourth.link("app/server-hardlink", "app/server", hard=True)
    for i in range(400):
        fourth.file(f"app/static/f{i:03}.js", content(rng, 10_000))
    layers.append(fourth.done())
    fifth = LayerBuilder()  # ~8 MB: a patch release
    fifth.file("app/server", content(rng, 8_000_000), 0o755)
    fifth.file("app/static/.wh.f000.js", b"")
    fifth.file("bin/.wh.tool-alias", b"")
    layers.append(fifth.done())
    return layers


def write_layout(path: Path, tars: list[bytes]) -> dict[str, int]:
    """An OCI image layout at ``path`` holding the image ``bench`` (gzip layers)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_descriptors = []
    for data in tars:
        layer_descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  **put(gzip.compress(data, compresslevel=6, mtime=0))})
    config = {"architecture": "amd64", "os": "linux", "created": "2020-09-13T12:26:40Z",
              "config": {"Cmd": ["/app/server"]},
              "rootfs": {"type": "layers", "diff_ids": [
                  "sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
              "history": [{"created_by": f"layer {i}"} for i in range(len(tars))]}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **put(json.dumps(config).encode())},
                "layers": layer_descriptors}
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  **put(json.dumps(manifest).encode()),
                  "annotations": {"org.opencontainers.image.ref.name": REF}}
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return {"unpacked": sum(len(t) for t in tars),
            "compressed": sum(int(d["size"]) for d in layer_descriptors)}  # type: ignore[call-overload]


# -- timing ----------------------------------------------------------------------------------

def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    # Start every sample with no dirty data pending: the last round's files (and deletions,
    # on a disk mounted with discard) would otherwise be flushed during this one.
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env=env)
    return (time.perf_counter() - t0) * 1000


UNPACK = ("import sys; sys.path.insert(0, {repo!r}); from minidocker.store import ImageStore; "
          "ImageStore({root!r}).resolve({ref!r}).layer_dirs()")


def fresh_root(work: Path, layout: Path, n: int) -> Path:
    """A state root whose image store is the layout, hard-linked (blobs are never written)."""
    root = work / f"root{n}"
    root.mkdir()
    subprocess.run(["cp", "-al", str(layout), str(root / "images")], check=True)
    return root


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered),
            "p10": ordered[max(0, round(len(ordered) * 0.1) - 1)],
            "p90": ordered[min(len(ordered) - 1, round(len(ordered) * 0.9))]}


def bench_unpack(work: Path, layout: Path, rounds: int, with_load: bool) -> dict[str, object]:
    umoci = ["umoci", "unpack", *([] if os.geteuid() == 0 else ["--rootless"]), "--image",
             f"{layout}:{REF}"]
    samples: dict[str, list[float]] = {"umoci unpack": [], "minidocker unpack": []}
    if with_load:
        samples["minidocker load -i"] = []
    for n in range(rounds):
        order = list(samples)
        if n % 2:
            order.reverse()
        for name in order:
            # Results are deleted only at the end: deleting 100 MB (with a disk mounted with
            # discard) keeps the disk busy well after rmtree returns, and would slow
            # whichever sample came next.
            if name == "umoci unpack":
                samples[name].append(timed([*umoci, str(work / f"bundle{n}")]))
            elif name == "minidocker unpack":
                root = fresh_root(work, layout, n)
                code = UNPACK.format(repo=str(REPO), root=str(root), ref=REF)
                samples[name].append(timed([str(PYTHON), "-I", "-S", "-c", code]))
            else:
                env = {**os.environ, "MINIDOCKER_ROOT": str(work / f"load{n}")}
                samples[name].append(timed([str(LAUNCHER), "load", "-q", "-i", str(layout)],
                                           env))
    stats = {name: summary(s) for name, s in samples.items()}
    reference = stats["umoci unpack"]["median"]
    return {"samples": samples, "stats": stats,
            "ratio": {name: s["median"] / reference for name, s in stats.items()}}


def same_tree(work: Path, layout: Path) -> int:
    """Unpack once with each tool and compare what they produced; returns the entry count."""
    from minidocker.layers import Stack
    from minidocker.store import ImageStore

    bundle = work / "check-bundle"
    subprocess.run(["umoci", "unpack", *([] if os.geteuid() == 0 else ["--rootless"]),
                    "--image", f"{layout}:{REF}", str(bundle)], check=True,
                   capture_output=True)
    rootfs = bundle / "rootfs"
    theirs = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            theirs[str(path.relative_to(rootfs))] = (st.st_mode, 0 if path.is_dir()
                                                     else st.st_size)
    root = fresh_root(work, layout, 999)
    store = ImageStore(root)
    stack = Stack(store.layer_dirs(store.resolve(REF)), whiteouts=store.whiteouts)
    ours = {rel: (node.st.st_mode, 0 if node.is_dir else node.st.st_size)
            for rel, node in stack.walk()}
    if ours != theirs:
        missing, extra = sorted(set(theirs) - set(ours))[:5], sorted(set(ours) - set(theirs))[:5]
        differ = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])[:5]
        raise SystemExit(f"the trees differ: only umoci {missing}, only minidocker {extra}, "
                         f"different {differ}")
    shutil.rmtree(bundle)
    shutil.rmtree(root)
    return len(ours)


def bench_images(work: Path, rounds: int) -> dict[str, object]:
    from minidocker.store import ImageStore

    root = work / "images-root"
    env = {**os.environ, "MINIDOCKER_ROOT": str(root)}
    subprocess.run([str(LAUNCHER), "run", "--rm", "busybox", "true"], check=True, env=env)
    store = ImageStore(root)
    base = store.resolve("busybox")
    for i in range(99):
        config = {**base.config, "created": f"2024-01-01T00:{i // 60:02}:{i % 60:02}Z",
                  "config": {**base.config["config"], "Labels": {"n": str(i)}}}
        store.write_image(config, base.layers(), f"bench/image{i:02}:v1")
    listed = subprocess.run([str(LAUNCHER), "images", "-q"], env=env, capture_output=True,
                            text=True, check=True).stdout.split()
    assert len(listed) == 100, len(listed)
    samples = [timed([str(LAUNCHER), "images"], env) for _ in range(rounds)]
    return {"samples": samples, "stats": summary(samples), "images": len(listed)}


# -- main -----------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=7, help="timed rounds of each (default 7)")
    p.add_argument("--load", action="store_true", help="also time minidocker load -i LAYOUT")
    p.add_argument("--json", action="store_true", help="all samples as JSON on stdout")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if unpack is slower than umoci's or images takes over 100 ms")
    args = p.parse_args()
    if shutil.which("umoci") is None:
        print("umoci is not installed: apt-get install umoci", file=sys.stderr)
        return 2
    if not LAUNCHER.is_file():
        print(f"{LAUNCHER} is missing: run scripts/setup.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mdbench-images-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        tars = build_layers()
        sizes = write_layout(work / "layout", tars)
        print(f"image: 5 gzip layers, {sizes['unpacked'] / 1e6:.1f} MB of tars, "
              f"{sizes['compressed'] / 1e6:.1f} MB compressed "
              f"(made in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        entries = same_tree(work, work / "layout")
        print(f"check: umoci's rootfs and minidocker's merged layers hold the same {entries} "
              "entries", file=sys.stderr)
        unpack = bench_unpack(work, work / "layout", args.n, args.load)
        images = bench_images(work, args.n * 3)
    report = {"image": sizes, "entries": entries, "unpack": unpack, "images": images,
              "umoci": subprocess.run(["umoci", "--version"], capture_output=True,
                                      text=True).stdout.strip(),
              "kernel": os.uname().release}
    out = sys.stderr if args.json else sys.stdout
    print(f"\n{'':22} {'median':>9} {'p10':>9} {'p90':>9}   x umoci", file=out)
    for name, s in unpack["stats"].items():  # type: ignore[attr-defined]
        ratio = unpack["ratio"][name]  # type: ignore[index]
        print(f"{name:22} {s['median']:7.0f}ms {s['p10']:7.0f}ms {s['p90']:7.0f}ms   "
              f"{ratio:.2f}", file=out)
    s = images["stats"]  # type: ignore[assignment]
    print(f"{'images (100 images)':22} {s['median']:7.1f}ms {s['p10']:7.1f}ms "
          f"{s['p90']:7.1f}ms   budget 100 ms", file=out)
    if args.json:
        print(json.dumps(report, indent=1))
    if args.check:
        slow = unpack["ratio"]["minidocker unpack"] > 1  # type: ignore[index]
        return 1 if slow or s["median"] > 100 else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
