"""``-v``, ``--mount``, ``--tmpfs``: Docker's forms, rules and messages, and the mount plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidocker import config, mounting, mounts
from minidocker.errors import UsageError
from minidocker.syscalls import MS

pytestmark = pytest.mark.nb08

CWD = "/home/me/project"


@pytest.mark.parametrize("spec, expected", [
    ("/data", config.Mount("", "/data", type="volume", mode="z")),
    ("/data/", config.Mount("", "/data", type="volume", mode="z")),
    ("db:/var/lib/db", config.Mount("db", "/var/lib/db", type="volume", mode="z")),
    ("db:/var/lib/db:ro,nocopy", config.Mount("db", "/var/lib/db", True, "volume",
                                              nocopy=True, mode="ro,nocopy")),
    ("/srv:/www", config.Mount("/srv", "/www", propagation="rprivate", create_source=True)),
    ("/srv/:/www:ro", config.Mount("/srv", "/www", True, propagation="rprivate",
                                   create_source=True, mode="ro")),
    ("/srv:/www:rw,rshared", config.Mount("/srv", "/www", propagation="rshared",
                                          create_source=True, mode="rw,rshared")),
    ("/srv:/www:slave,Z", config.Mount("/srv", "/www", propagation="slave",
                                       create_source=True, relabel="Z", mode="slave,Z")),
    ("./site:/www:cached", config.Mount(CWD + "/site", "/www", propagation="rprivate",
                                        create_source=True, mode="cached")),
    ("../site:/www", config.Mount("/home/me/site", "/www", propagation="rprivate",
                                  create_source=True)),
])
def test_volume_forms(spec: str, expected: config.Mount) -> None:
    assert mounts.parse_volume(spec, CWD) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "invalid volume specification: ''"),
    (":/data", "invalid volume specification: ':/data'"),
    ("/a:/b:ro:x", "invalid volume specification: '/a:/b:ro:x'"),
    ("/data:ro", "invalid volume specification: '/data:ro'"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/b:shared,slave", "invalid mode: shared,slave"),
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:data", "invalid volume specification: '/a:data': invalid mount config for type "
                "\"bind\": invalid mount path: 'data' mount path must be absolute"),
    ("data", "invalid volume specification: 'data': invalid mount config for type "
             "\"volume\": invalid mount path: 'data' mount path must be absolute"),
    ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": "
             "invalid specification: destination can't be '/'"),
    ("db:/data:shared", "invalid volume specification: 'db:/data:shared': invalid mount "
                        "config for type \"volume\": field BindOptions must not be specified"),
    ("/a:/data:nocopy", "invalid volume specification: '/a:/data:nocopy': invalid mount "
                        "config for type \"bind\": field VolumeOptions must not be specified"),
    ("my/vol:/data", '"my/vol" includes invalid characters for a local volume name, only '
                     '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                     "directory, use absolute path"),
])
def test_volume_refusals(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        mounts.parse_volume(spec, CWD)
    assert str(err.value) == message


def test_mount_forms(tmp_path: Path) -> None:
    src = str(tmp_path)
    assert mounts.parse_mount(f"type=bind,src={src},dst=/www,readonly,"
                              "bind-propagation=rslave", CWD) == \
        config.Mount(src, "/www", True, "bind", "rslave")
    assert mounts.parse_mount(f"type=bind,source={src},target=/www,ro=false", CWD) == \
        config.Mount(src, "/www", False, "bind", "rprivate")
    assert mounts.parse_mount("source=db,destination=/data,volume-nocopy,"
                              "volume-label=team=a", CWD) == \
        config.Mount("db", "/data", type="volume", nocopy=True, labels={"team": "a"})
    assert mounts.parse_mount("type=volume,dst=/data", CWD) == \
        config.Mount("", "/data", type="volume")
    assert mounts.parse_mount("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=1777", CWD) == \
        config.Mount("", "/run", type="tmpfs", tmpfs_options="mode=1777,size=64m")
    assert mounts.parse_mount("type=tmpfs,dst=/run,tmpfs-size=1536k", CWD).tmpfs_options == \
        "size=1536k"
    assert mounts.parse_mount("type=tmpfs,dst=/run,tmpfs-size=1g", CWD).tmpfs_options == \
        "size=1g"
    # ./relative sources are the CLI's: made absolute from where the command was typed
    seen: list[str] = []
    m = mounts.parse_mount("type=bind,src=./site,dst=/www", CWD,
                           exists=lambda p: seen.append(p) or True)
    assert m.source == seen[0] == CWD + "/site"


@pytest.mark.parametrize("spec, message", [
    ("type=bind,src=/nonexistent-md-src,dst=/x", 'invalid mount config for type "bind": '
     "bind source path does not exist: /nonexistent-md-src"),
    ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be '
     "empty"),
    ("type=bind,src=/,dst=/x,bind-propagation=sideways", 'invalid mount config for type '
     '"bind": invalid propagation mode: sideways'),
    ("type=volume,src=db", 'invalid mount config for type "volume": field Target must not be '
     "empty"),
    ("type=volume,dst=data", 'invalid mount config for type "volume": invalid mount path: '
     "'data' mount path must be absolute"),
    ("type=volume,dst=/", 'invalid mount config for type "volume": invalid specification: '
     "destination can't be '/'"),
    ("type=tmpfs,src=x,dst=/run", 'invalid mount config for type "tmpfs": field Source must '
     "not be specified"),
    ("type=floppy,dst=/a", 'invalid mount config for type "floppy": mount type unknown'),
    ("type=volume,dst=/a,bind-propagation=shared", 'invalid argument "type=volume,dst=/a,'
     'bind-propagation=shared" for "--mount" flag: cannot mix \'bind-*\' options with mount '
     "type 'volume'"),
    ("type=bind,src=/,dst=/a,volume-nocopy", 'invalid argument "type=bind,src=/,dst=/a,'
     'volume-nocopy" for "--mount" flag: cannot mix \'volume-*\' options with mount type '
     "'bind'"),
    ("type=volume,dst", 'invalid argument "type=volume,dst" for "--mount" flag: invalid '
     "field 'dst' must be a key=value pair"),
    ("type=volume,dst=/a,colour=red", 'invalid argument "type=volume,dst=/a,colour=red" for '
     "\"--mount\" flag: unknown option 'colour' in 'colour=red'"),
    ("type=volume,dst=/a,ro=maybe", 'invalid argument "type=volume,dst=/a,ro=maybe" for '
     "\"--mount\" flag: invalid value for 'ro': invalid boolean value (\"maybe\"): must be one "
     'of "true", "1", "false", or "0" (default "true")'),
    ("type=tmpfs,dst=/a,tmpfs-size=lots", 'invalid argument "type=tmpfs,dst=/a,'
     'tmpfs-size=lots" for "--mount" flag: invalid value for tmpfs-size: lots'),
    ("type=tmpfs,dst=/a,tmpfs-mode=999", 'invalid argument "type=tmpfs,dst=/a,tmpfs-mode=999" '
     'for "--mount" flag: invalid value for tmpfs-mode: 999'),
    ("", 'invalid argument "" for "--mount" flag: value is empty'),
])
def test_mount_refusals(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        mounts.parse_mount(spec, CWD)
    assert str(err.value) == message


def test_tmpfs_and_duplicates() -> None:
    assert mounts.parse_tmpfs("/run:size=64m,mode=1777") == \
        config.Mount("", "/run", type="tmpfs", tmpfs_options="size=64m,mode=1777")
    assert mounts.parse_tmpfs("/ro:ro").readonly
    for spec, message in (("run", "invalid mount config for type \"tmpfs\": invalid mount "
                                  "path: 'run' mount path must be absolute"),
                          ("/:size=1m", "invalid mount config for type \"tmpfs\": invalid "
                                        "specification: destination can't be '/'"),
                          ("/run:colour=red", 'invalid tmpfs option "colour"'),
                          ("/run:size", 'invalid tmpfs option "size"')):
        with pytest.raises(UsageError) as err:
            mounts.parse_tmpfs(spec)
        assert str(err.value) == message
    with pytest.raises(UsageError, match="^Duplicate mount point: /data$"):
        mounts.parse_flags(["db:/data"], [], ["/data/"], CWD)
    both = mounts.parse_flags(["db:/data"], ["type=tmpfs,dst=/cache"], ["/run"], CWD)
    assert [m.target for m in both] == ["/data", "/cache", "/run"]


def test_tmpfs_options_as_mount_arguments() -> None:
    flags, data = mounting.tmpfs_flags_and_data("size=64m,mode=1777")
    assert (flags, data) == (MS.NOEXEC | MS.NOSUID | MS.NODEV, "size=64m,mode=1777")
    flags, data = mounting.tmpfs_flags_and_data("exec,ro,noatime,rprivate")
    assert (flags, data) == (MS.NOSUID | MS.NODEV | MS.RDONLY | MS.NOATIME, "")


def test_relabel_is_noted_not_silently_dropped() -> None:
    parsed = mounts.parse_flags(["/srv:/www:z", "/etc:/e", "db:/d:Z"], [], [], CWD)
    assert mounts.notes(parsed, selinux=False) == [
        "/srv: z ignored: no SELinux on this host", "db: Z ignored: no SELinux on this host"]
    assert mounts.notes(parsed, selinux=True) == [
        "/srv: z: minidocker does not relabel for SELinux; the container may be denied "
        "access to it",
        "db: Z: minidocker does not relabel for SELinux; the container may be denied "
        "access to it"]
    assert mounts.notes(parsed[1:2]) == []  # nothing asked: the host is not even read


def test_relabel_note_reads_the_hosts_lsms(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    from minidocker import lsm

    parsed = mounts.parse_flags(["/srv:/www:z"], [], [], CWD)
    real_status = lsm.status
    monkeypatch.setattr(lsm, "status", lambda: real_status(str(tmp_path)))
    assert mounts.notes(parsed) == ["/srv: z ignored: no SELinux on this host"]
    (tmp_path / "fs" / "selinux").mkdir(parents=True)
    (tmp_path / "fs" / "selinux" / "enforce").write_text("0\n")  # enabled, permissive
    assert mounts.notes(parsed)[0].startswith("/srv: z: minidocker does not relabel")


def test_mount_records_round_trip() -> None:
    parsed = mounts.parse_flags(["db:/data:ro,nocopy", "/srv:/www:rshared,Z"],
                                ["type=tmpfs,dst=/t,tmpfs-size=1m"], ["/run:mode=700"], CWD)
    cfg = config.ContainerConfig("busybox", mounts=parsed, read_only=True)
    assert config.ContainerConfig.from_dict(cfg.to_dict()) == cfg
    assert config.ContainerConfig.from_dict(cfg.to_dict()).mounts[1].relabel == "Z"
    # a record written before these fields still loads, with the defaults
    old = config.Mount.from_dict({"source": "/h", "target": "/in", "readonly": True,
                                  "type": "bind"})
    assert (old.propagation, old.nocopy, old.labels) == ("", False, {})


def test_plan_orders_parents_first_and_resolves_volumes() -> None:
    parsed = mounts.parse_flags(["/srv/cache:/data/cache", "db:/data:ro"], [],
                                ["/run:size=1m"], CWD)
    planned = mounts.plan(parsed, {"/data": "/var/lib/minidocker/volumes/db/_data"})
    assert [(p.target, p.source, p.type, p.readonly) for p in planned] == [
        ("/data", "/var/lib/minidocker/volumes/db/_data", "bind", True),
        ("/run", "", "tmpfs", False),
        ("/data/cache", "/srv/cache", "bind", False),
    ]
    assert planned[2].propagation == "rprivate"


def test_prepare_bind_sources(tmp_path: Path) -> None:
    made = tmp_path / "made" / "here"
    mounts.prepare_bind_sources(mounts.parse_flags([f"{made}:/data"], [], [], CWD))
    assert made.is_dir()
    gone = tmp_path / "gone"
    gone.mkdir()
    asked = mounts.parse_mount(f"type=bind,src={gone},dst=/x", CWD)
    gone.rmdir()
    with pytest.raises(UsageError, match=f"bind source path does not exist: {gone}$"):
        mounts.prepare_bind_sources([asked])
    assert not gone.exists()


def test_run_flags_become_mounts(tmp_path: Path) -> None:
    from minidocker import cli, flags

    argv = ["-v", "db:/data", "--volume=./site:/www:ro", "--mount",
            f"type=bind,src={tmp_path},dst=/src", "--tmpfs", "/run:size=1m", "--read-only",
            "busybox", "ls", "-v"]
    args = flags.parse(cli._run_flags(), argv, "run")
    cfg = cli.config_from_flags(args, {}, "/work")
    assert [(m.type, m.source, m.target) for m in cfg.mounts] == [
        ("volume", "db", "/data"), ("bind", "/work/site", "/www"),
        ("bind", str(tmp_path), "/src"), ("tmpfs", "", "/run")]
    assert cfg.read_only and cfg.process.args == ["ls", "-v"]  # -v after the image is ls's
    plain = cli.config_from_flags(flags.parse(cli._run_flags(), ["busybox"], "run"), {}, "/")
    assert plain.mounts == [] and not plain.read_only


@pytest.mark.parametrize(("binds", "root"), [
    ([], "rprivate"), (["rprivate", "private"], "rprivate"), (["rslave"], "rslave"),
    (["slave", "rprivate"], "rslave"), (["rslave", "shared"], "rshared"), (["rshared"], "rshared"),
])
def test_the_roots_propagation_follows_the_binds(binds: list[str], root: str) -> None:
    """Docker's rule for runc's rootfsPropagation: shared wins, then slave."""
    from minidocker import rootfs

    assert rootfs.root_propagation(binds) == root
