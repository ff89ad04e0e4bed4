"""rmi's rules, garbage collection, the images/history tables, changes, formatting."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import commit, humanize, instructions
from minidocker.commands import images as commands
from minidocker.errors import ImageError, ImageNotFound, UsageError
from minidocker.layers import chain_ids
from minidocker.store import ImageStore, Layer

pytestmark = pytest.mark.nb05


def make_tar(*files: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def image(store: ImageStore, ref: str | None, *tars: bytes, parent: list[Layer] | None = None,
          created: str = "2024-01-01T00:00:00Z") -> Any:
    stack = list(parent or [])
    for data in tars:
        top = chain_ids([x.diff_id for x in stack])[-1] if stack else None
        stack.append(store.add_layer(io.BytesIO(data), parent=top))
    config = {"created": created, "architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["sh"]},
              "history": [{"created": created, "created_by": f"step {i}"}
                          for i in range(len(stack))]}
    return store.write_image(config, stack, ref)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "root")


def tree(root: Path) -> set[str]:
    return {str(Path(d, n).relative_to(root)) for d, ds, fs in os.walk(root) for n in ds + fs}


# -- rmi --------------------------------------------------------------------------------------

def test_rmi_untags_while_another_name_keeps_the_image(store: ImageStore) -> None:
    base = image(store, "a:1", make_tar(("f", b"1")))
    store.tag("a:1", "b:1")
    assert store.remove("a:1") == [("Untagged", "a:1")]
    assert store.resolve("b:1").id == base.id
    assert store.remove("b:1") == [("Untagged", "b:1"), ("Deleted", base.id)]
    with pytest.raises(ImageNotFound, match="no such image: b:1"):
        store.remove("b:1")


def test_rmi_by_id_with_two_names_must_be_forced(store: ImageStore) -> None:
    img = image(store, "a:1", make_tar(("f", b"1")))
    store.tag("a:1", "b:1")
    with pytest.raises(ImageError, match=f"unable to delete {img.short_id} \\(must be forced\\) - "
                                         "image is referenced in multiple repositories"):
        store.remove(img.short_id)
    assert store.remove(img.short_id, force=True) == [("Untagged", "a:1"), ("Untagged", "b:1"),
                                                      ("Deleted", img.id)]


def test_rmi_refuses_an_image_in_use(store: ImageStore) -> None:
    img = image(store, "a:1", make_tar(("f", b"1")))
    stopped = {img.id: [("c0ffee" * 10 + "abcd", False)]}
    running = {img.id: [("beef" * 16, True)]}
    before = store.images_dir.joinpath("index.json").read_bytes()
    with pytest.raises(ImageError, match='unable to remove repository reference "a:1" '
                                         r"\(must force\) - container c0ffeec0ffee is using"):
        store.remove("a:1", users=lambda i: stopped.get(i, []))
    with pytest.raises(ImageError, match=r"\(cannot be forced\) - image is being used by running "
                                         "container beefbeefbeef"):
        store.remove("a:1", force=True, users=lambda i: running.get(i, []))
    with pytest.raises(ImageError, match="being used by stopped container c0ffeec0ffee"):
        store.remove(img.id, users=lambda i: stopped.get(i, []))
    assert store.images_dir.joinpath("index.json").read_bytes() == before
    assert store.remove("a:1", force=True, users=lambda i: stopped.get(i, []))[-1] == \
        ("Deleted", img.id)


def test_garbage_collection_frees_only_what_nothing_reaches(store: ImageStore) -> None:
    base = image(store, "base:1", make_tar(("f", b"base")))
    child = image(store, "child:1", make_tar(("g", b"child")), parent=base.layers())
    lone = image(store, "lone:1", make_tar(("h", b"lone")))
    kept_by_container = lone.chain_ids()[0].removeprefix("sha256:")
    (store.tmp_dir / "blob-12345-leftover").write_bytes(b"from a load killed with -9")
    with store.collecting():
        store.remove("base:1")
        store.remove("lone:1")
        deleted, freed = store.collect_garbage({kept_by_container})
    assert deleted == [] and freed > 0  # base's layer: child's too; lone's: a container's
    assert os.listdir(store.tmp_dir) == []
    assert (store.layers_dir / kept_by_container).is_dir()
    assert store.layer_dirs(store.resolve("child:1"))  # all still there
    with store.collecting():
        store.remove("child:1")
        deleted, _ = store.collect_garbage()
    assert sorted(deleted) == sorted({*child.chain_ids(), lone.chain_ids()[0]})
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.blobs_dir) == []


def test_collecting_inside_writing_is_refused(store: ImageStore) -> None:
    with store.writing(), pytest.raises(RuntimeError, match="wait for itself"), \
            store.collecting():
        pass


# -- images and history ---------------------------------------------------------------------

def test_a_build_steps_config_only_images_are_intermediate(store: ImageStore) -> None:
    """A build's ENV or CMD step makes an image with the same layers as the next: hidden, as
    is the layer-less image FROM scratch starts from; the build's last image is not."""
    step = image(store, None, make_tar(("f", b"1")), created="2024-01-01T00:00:00Z")
    final = image(store, None, parent=step.layers(), created="2024-01-02T00:00:00Z")
    scratch = image(store, None, created="2023-01-01T00:00:00Z")
    rows = {r.image.id: r.intermediate for r in commands.image_rows(store)}
    assert rows == {step.id: True, final.id: False, scratch.id: True}


def test_images_rows_hide_intermediate_and_find_dangling(store: ImageStore) -> None:
    base = image(store, "base:1", make_tar(("f", b"1")), created="2024-01-01T00:00:00Z")
    child = image(store, "child:1", make_tar(("g", b"2")), parent=base.layers(),
                  created="2024-02-01T00:00:00Z")
    image(store, "base:1", make_tar(("f", b"other")), created="2024-03-01T00:00:00Z")
    loose = image(store, None, make_tar(("x", b"x")), created="2023-01-01T00:00:00Z")
    rows = commands.image_rows(store)
    assert [(r.repo, r.tag, r.intermediate) for r in rows] == [
        ("base", "1", False), ("child", "1", False), ("<none>", "<none>", True),
        ("<none>", "<none>", False)]
    assert rows[2].image.id == base.id and rows[3].image.id == loose.id
    assert rows[1].size == sum(len(make_tar(f)) for f in (("f", b"1"), ("g", b"2")))

    class Args:
        all, reference, filter = False, None, ["dangling=true"]
    assert [r.image.id for r in commands._filter_rows(rows, Args)] == [loose.id]
    Args.all = True
    assert [r.image.id for r in commands._filter_rows(rows, Args)] == [base.id, loose.id]
    Args.filter, Args.all = ["reference=ch*"], False
    assert [r.image.id for r in commands._filter_rows(rows, Args)] == [child.id]
    Args.filter = ["label=x"]
    with pytest.raises(UsageError, match="invalid filter 'label=x'"):
        commands._filter_rows(rows, Args)


def test_history_rows_name_known_parents(store: ImageStore) -> None:
    base = image(store, "base:1", make_tar(("f", b"1")))
    child = image(store, "child:1", make_tar(("g", b"22")), parent=base.layers())
    rows = commands.history_rows(store, child)
    assert [r["id"] for r in rows] == [child.id, base.id]
    assert [r["created_by"] for r in rows] == ["step 1", "step 0"]
    assert rows[0]["size"] == len(make_tar(("g", b"22")))


# -- commit's config, and -c ----------------------------------------------------------------

def test_commit_takes_the_containers_command_env_and_workdir(store: ImageStore) -> None:
    img = image(store, "a:1", make_tar(("f", b"1")))
    img.config["config"] = {"Entrypoint": ["/entry"], "Cmd": ["default"], "Env": ["A=1"],
                            "Labels": {"k": "v"}}
    spec = {"argv": ["/entry", "custom", "arg"], "env": {"A": "1", "B": "2", "HOSTNAME": "x",
                                                         "TERM": "xterm"},
            "workdir": "/srv", "user": "0"}
    config = commit.container_run_config(spec, img)
    assert config == {"Entrypoint": ["/entry"], "Cmd": ["custom", "arg"], "Env": ["A=1", "B=2"],
                      "Labels": {"k": "v"}, "WorkingDir": "/srv"}


def test_changes_as_dockerfile_instructions() -> None:
    base = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/app"}
    got = instructions.apply(base, [
        'CMD ["nginx", "-g", "daemon off;"]', "ENV A=2 B=\"two words\"", "ENV C plain value",
        "EXPOSE 80 53/udp", "LABEL a=b", "VOLUME /data", "WORKDIR sub", "USER www-data",
        "STOPSIGNAL SIGQUIT"])
    assert got == {"Env": ["PATH=/bin", "A=2", "B=two words", "C=plain value"],
                   "Cmd": ["nginx", "-g", "daemon off;"], "WorkingDir": "/app/sub",
                   "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Labels": {"a": "b"},
                   "Volumes": {"/data": {}}, "User": "www-data", "StopSignal": "SIGQUIT"}
    assert instructions.apply(base, ["CMD echo hi"])["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert "Cmd" not in instructions.apply(base, ['ENTRYPOINT ["/e"]'])
    assert instructions.apply(base, ['ENTRYPOINT ["/e"]', "CMD x"])["Cmd"] == \
        ["/bin/sh", "-c", "x"]
    assert base == {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/app"}
    for bad, words in (("RUN apt-get update", "RUN is not a valid change command"),
                       ("ENV =x", "ENV names can not be blank"), ("EXPOSE http", "invalid port"),
                       ("CMD", "requires at least one argument")):
        with pytest.raises(UsageError, match=words):
            instructions.apply(base, [bad])


# -- Docker's way of printing -----------------------------------------------------------------

@pytest.mark.parametrize(("n", "text"), [(0, "0B"), (12, "12B"), (999, "999B"), (1500, "1.5kB"),
                                         (4_261_234, "4.26MB"), (2_000_000_000, "2GB")])
def test_sizes_as_docker_prints_them(n: int, text: str) -> None:
    assert humanize.size(n) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (61, "About a minute"),
    (3000, "50 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years")])
def test_durations_as_docker_prints_them(seconds: float, text: str) -> None:
    assert humanize.duration(seconds) == text

def test_times_and_templates() -> None:
    assert humanize.ago("2024-01-02T03:04:05Z", now=1704164645 + 7200) == "2 hours ago"
    data = {"Id": "sha256:ab", "RepoTags": ["a:1", "b:2"], "Config": {"Cmd": ["sh", "-c"],
                                                                     "Env": None}}
    assert commands.render_format("{{.Id}} {{.Config.Cmd}} {{json .RepoTags}} "
                                  "{{index .RepoTags 1}} {{.Nope}}", data) == \
        'sha256:ab [sh -c] ["a:1","b:2"] b:2 <no value>'
    # ps's engine, so what ps and inspect take works here too
    assert commands.render_format("{{range .RepoTags}}{{.}};{{end}}", data) == "a:1;b:2;"
    with pytest.raises(UsageError, match="template parsing error: template: :1: unclosed"):
        commands.render_format("{{.Id", data)


def test_image_formats_print_what_they_always_printed() -> None:
    """Through gotemplate, byte for byte what the image commands' own engine printed: a
    typed \\t and \\n, nulls as <no value> (ps prints <nil>), json escaping non-ASCII."""
    data = {"Config": {"Env": None, "Labels": {"z": "1", "a": "\u00e9", "n": None}},
            "Descriptor": {"mediaType": None, "size": 12}, "Tty": False}
    assert commands.render_format("{{.Config.Env}}|{{.Config.Labels}}|{{.Descriptor}}|"
                                  "{{.Tty}}", data) == \
        "<no value>|map[a:\u00e9 n:<no value> z:1]|map[mediaType:<no value> size:12]|false"
    assert commands.render_format("{{json .Config}}", data) == \
        '{"Env":null,"Labels":{"z":"1","a":"\\u00e9","n":null}}'
    assert commands.render_format("{{json .Descriptor.mediaType}}\\t{{.Tty}}\\n", data) == \
        "null\tfalse\n"
    assert commands.render_format('{{index .Config.Labels "z"}}', data) == "1"
