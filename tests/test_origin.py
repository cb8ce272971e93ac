"""Where a set lives: ``origin`` recorded at init and moved by relink into a history; listed for sets that live (or
lived) elsewhere; ``xmen sync`` brings a remote set's records here over ssh, tested against an sshd on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from xmen.store import config as global_config
from xmen.store import files
from xmen.sets.expset import ExperimentSet

from cli_helpers import make_set, xmen

DEFAULTS = "a: 1  # (int) A parameter\n"
SCRIPT = "#!/bin/bash\ntrue\n"
CLUSTER = "arcus-htc-login02.arcus-htc.arc.local"
SWEEP = "{a: 1 | 2}"


@pytest.fixture(autouse=True)
def experiment(tmp_path):
    """The plain shell experiment of the sets the tests make (make_set) in tmp_path."""
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)


def as_if_from_cluster(root: Path, cluster_path: str) -> None:
    """Make ``root`` what an rsync of a set made on the cluster at ``cluster_path`` looks like here."""
    data = files.read_yaml(root / "experiment.yml")
    data["root"] = cluster_path
    data["origin"] = {"host": CLUSTER, "path": cluster_path}
    files.write_yaml(root / "experiment.yml", data)


def test_init_records_where_the_set_lives(xmen_home, tmp_path):
    root = make_set(tmp_path, "set_a", SWEEP)
    assert files.read_yaml(root / "experiment.yml")["origin"] == {"host": socket.gethostname(), "path": str(root)}


def test_list_over_sets_from_several_machines_shows_relative_roots_and_origin(xmen_home, tmp_path, capsys,
                                                                               monkeypatch):
    local = make_set(tmp_path, "experiments/local/set_a", SWEEP)
    remote = make_set(tmp_path, "experiments/arc/test_2", SWEEP)
    as_if_from_cluster(remote, "/data/engs-a2i/kebl4674/experiments/test_2")
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "experiments")
    code, out, err = xmen(capsys, "list", "--csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    header = lines[0].split(",")
    assert header[1:4] == ["root", "name", "origin"]
    rows = [line.split(",") for line in lines[1:]]
    origins = {(r[1], r[2]): r[3] for r in rows}
    assert origins[("arc/test_2", "a=1")] == f"{CLUSTER}:/data/engs-a2i/kebl4674/experiments/test_2"
    assert origins[("local/set_a", "a=2")] == ""
    assert local.exists()


def test_a_set_listed_alone_here_has_no_origin_column(xmen_home, tmp_path, capsys, monkeypatch):
    make_set(tmp_path, "set_a", SWEEP)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    code, out, _ = xmen(capsys, "list", "--csv")
    assert code == 0 and "origin" not in out.splitlines()[0]


def test_relink_after_a_copy_keeps_the_origin_history(xmen_home, tmp_path, capsys, monkeypatch):
    remote = make_set(tmp_path, "arc/test_2", SWEEP)
    as_if_from_cluster(remote, "/data/u/test_2")
    assert xmen(capsys, "relink", "-r", str(remote))[0] == 0
    data = files.read_yaml(remote / "experiment.yml")
    assert data["origin"] == {"host": socket.gethostname(), "path": str(remote)}
    assert [(e["host"], e["path"]) for e in data["origins"]] == [(CLUSTER, "/data/u/test_2")]
    monkeypatch.chdir(tmp_path)
    code, out, _ = xmen(capsys, "list", "--csv")
    assert f"{CLUSTER}:/data/u/test_2" in out  # still shows where it came from
    # a second move here adds to the history
    moved = tmp_path / "moved"
    shutil.move(str(remote), str(moved))
    assert xmen(capsys, "relink", "-r", str(moved))[0] == 0
    history = files.read_yaml(moved / "experiment.yml")["origins"]
    assert [e["path"] for e in history] == ["/data/u/test_2", str(remote)]


def test_relinking_a_copy_does_not_forget_the_set_it_was_copied_from(xmen_home, tmp_path, capsys):
    source = make_set(tmp_path, "a/set", SWEEP)
    copy = tmp_path / "b" / "set"
    shutil.copytree(source, copy)
    assert xmen(capsys, "relink", "-r", str(copy))[0] == 0
    assert str(source) in global_config.load().sets
    assert str(copy) in global_config.load().sets


# ---------------------------------------------------------------------------------------------- xmen sync
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tools_ready() -> bool:
    return all(shutil.which(t) for t in ("ssh", "ssh-keygen", "rsync")) and os.path.exists("/usr/sbin/sshd")


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1 (free high port) with its own host key and authorized_keys; yields an ssh command."""
    if not _tools_ready() or (os.geteuid() == 0 and not os.path.isdir("/run/sshd")):
        subprocess.run(["bash", str(Path(__file__).parent / "ssh" / "install.sh")], timeout=600)
    if not _tools_ready():
        if os.environ.get("CI") == "true":
            pytest.fail("sshd/ssh/rsync are not installed and tests/ssh/install.sh could not install them")
        pytest.skip("sshd/ssh/rsync not installed")
    folder = tmp_path / "sshd"
    folder.mkdir()
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    os.chmod(folder / "authorized_keys", 0o600)
    port = _free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
    )
    (folder / "ssh_config").write_text(
        f"Host *\n  Port {port}\n  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile {folder / 'known_hosts'}\n  BatchMode yes\n"
        "  LogLevel ERROR\n"
    )
    with open(folder / "sshd.log", "w") as log_file:
        process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    rsh = f"ssh -F {folder / 'ssh_config'}"
    try:
        deadline = time.monotonic() + 20
        while True:
            probe = subprocess.run([*rsh.split(), "127.0.0.1", "true"], capture_output=True, timeout=20)
            if probe.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "sshd.log").read_text()
                message = f"sshd did not accept a login: {probe.stderr.decode()[-300:]} {log[-500:]}"
                if os.environ.get("CI") == "true":
                    pytest.fail(message)
                pytest.skip(message)
            time.sleep(0.2)
        yield rsh
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("via", ["rsync", "tar"])
def test_sync_brings_a_remote_sets_records_and_lists_it_with_its_origin(via, xmen_home, tmp_path, capsys, sshd):
    remote = make_set(tmp_path, "cluster/experiments/set_a", SWEEP)
    (remote / "a=1" / "checkpoint.pt").write_bytes(b"\0" * 1000)  # not a record
    (remote / "a=1" / "big.log").write_bytes(b"x" * 3_000_000)  # a record, but over --max-size
    (remote / "a=1" / "out.txt").write_text("step 1\n")
    (remote / "a=1" / ".xmen-heartbeat").write_text("")  # a run's own file: never copied
    user = os.environ.get("USER") or __import__("getpass").getuser()
    laptop = tmp_path / "laptop"
    before = {p: p.read_bytes() for p in remote.rglob("*") if p.is_file()}
    code, out, err = xmen(capsys, "sync", f"{user}@127.0.0.1:{remote}", str(laptop), "--rsh", sshd, "--max-size", "1M",
                           "--via", via)
    assert code == 0, err
    local = laptop / "set_a"
    assert (local / "experiment.yml").is_file() and (local / "a=2" / "params.yml").is_file()
    assert (local / "a=1" / "out.txt").read_text() == "step 1\n"
    assert not (local / "a=1" / "checkpoint.pt").exists() and not (local / "a=1" / "big.log").exists()
    assert not (local / "a=1" / ".xmen-heartbeat").exists()
    # listed right away, with where it lives
    assert "a=1" in out and "a=2" in out and "origin" in out and str(remote) in out
    assert ExperimentSet(local).experiments == ["a=1", "a=2"]
    assert {p: p.read_bytes() for p in remote.rglob("*") if p.is_file()} == before
    # syncing again is fine (and brings what changed)
    (remote / "a=2" / "out.txt").write_text("done\n")
    code, _, err = xmen(capsys, "sync", f"127.0.0.1:{remote}", str(laptop), "--rsh", sshd, "--no-list", "--via", via)
    assert code == 0, err
    assert (local / "a=2" / "out.txt").read_text() == "done\n"


def test_sync_refuses_a_source_that_is_not_host_and_path(xmen_home, tmp_path, capsys):
    code, _, err = xmen(capsys, "sync", str(tmp_path), str(tmp_path / "x"))
    assert code != 0 and err.startswith("Error: expected [USER@]HOST:/path/to/set")
    code, _, err = xmen(capsys, "sync", "h:/x", str(tmp_path / "x"), "--max-size", "lots")
    assert code != 0 and err.startswith("Error: --max-size")


@pytest.mark.parametrize("via", ["rsync", "tar"])
def test_sync_of_a_set_named_like_an_option_copies_it_and_touches_nothing_beside_it(via, xmen_home, tmp_path,
                                                                                    capsys, sshd):
    """A set called ``-delete`` reached the remote ``find`` as its action: nothing was copied, exit 0, and the
    files beside the set were deleted. (xmen init refuses such a name now: the set was named so before, by hand.)"""
    remote = tmp_path / "cluster" / "-delete"
    make_set(tmp_path, "cluster/delete", SWEEP).rename(remote)
    beside = tmp_path / "cluster" / "keep.txt"
    beside.write_text("the user's own\n")
    laptop = tmp_path / "laptop"
    code, _, err = xmen(capsys, "sync", f"127.0.0.1:{remote}", str(laptop), "--rsh", sshd, "--no-list", "--via", via)
    assert code == 0, err
    assert (laptop / "-delete" / "experiment.yml").is_file() and (laptop / "-delete" / "a=2" / "params.yml").is_file()
    assert beside.read_text() == "the user's own\n"
    assert ExperimentSet(remote).experiments == ["a=1", "a=2"]


@pytest.mark.parametrize("via", ["rsync", "tar"])
def test_a_failed_sync_says_so_and_leaves_no_empty_destination(via, xmen_home, tmp_path, capsys, sshd):
    laptop = tmp_path / "laptop" / "cluster"
    code, out, err = xmen(capsys, "sync", f"127.0.0.1:{tmp_path / 'no_such_set'}", str(laptop), "--rsh", sshd,
                          "--no-list", "--via", via)
    assert code != 0 and err.startswith("Error: ") and err.count("\n") == 1, out + err
    assert not (tmp_path / "laptop").exists()


@pytest.mark.parametrize("via", ["rsync", "tar"])
@pytest.mark.parametrize("host", ["-oProxyCommand=touch${IFS}pwned", "me@-oProxyCommand=touch${IFS}pwned"])
def test_sync_refuses_a_host_that_ssh_would_read_as_an_option(via, host, xmen_home, tmp_path, capsys, monkeypatch):
    """``-oProxyCommand=...`` as the host ran the command here (ssh read it as an option)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = xmen(capsys, "sync", "--via", via, "--", f"{host}:/x/set_a", str(tmp_path / "laptop"))
    assert code != 0 and err.startswith("Error: host ") and "starts with '-'" in err, err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "laptop").exists()


def test_origin_bookkeeping_units():
    from xmen.store import origin

    here = socket.gethostname()
    data = {"root": "/old/place"}
    origin.moved_to(data, "/new/place", "t1")
    assert data["origin"] == {"host": here, "path": "/new/place"}
    assert data["origins"] == [{"host": None, "path": "/old/place", "left": "t1"}]
    assert origin.label(data, "/new/place") == ""  # lived only here
    in_place = {"root": "/same"}
    origin.moved_to(in_place, "/same", "t1")  # an original set migrated where it is: no history
    assert "origins" not in in_place
    remote = {"origin": {"host": "gpu01", "path": "/scratch/s"}}
    assert origin.label(remote, "/home/me/s") == "gpu01:/scratch/s"
    origin.moved_to(remote, "/home/me/s", "t2")
    assert origin.label(remote, "/home/me/s") == "gpu01:/scratch/s"  # the last other machine
    assert origin.label({"root": "/elsewhere"}, "/here") == "/elsewhere"


def test_a_set_moved_here_without_relink_lists_where_it_was(xmen_home, tmp_path, capsys, monkeypatch):
    source = make_set(tmp_path, "a/set_a", SWEEP)
    time.sleep(2.2)  # settled files (ctime older than the index's racy window): the listing index caches the set
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert "origin" not in xmen(capsys, "list", "--csv")[1].splitlines()[0]
    assert (source / ".xmen").is_dir()  # the index, moved along with the set
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    out = xmen(capsys, "list", "--csv")[1]
    assert out.splitlines()[0].split(",")[3] == "origin"
    assert f"{socket.gethostname()}:{source}" in out


@pytest.mark.parametrize("via", ["rsync", "tar"])
@pytest.mark.parametrize("where", ["", "a=1", "a=2/out.txt", "a=2/params.yml"])
def test_sync_never_writes_through_a_link_in_the_destination(via, where, xmen_home, tmp_path, capsys, sshd):
    """A link in the local copy (the set folder, an experiment folder, a record's file) to the user's own files:
    the sync refuses in one line naming it, before it writes anything; the link and what it points to stay."""
    remote = make_set(tmp_path, "cluster/set_a", SWEEP)
    (remote / "a=2" / "out.txt").write_text("remote\n")
    laptop = tmp_path / "laptop"
    assert xmen(capsys, "sync", f"127.0.0.1:{remote}", str(laptop), "--rsh", sshd, "--no-list", "--via", via)[0] == 0
    own = tmp_path / "own"
    own.mkdir()
    (own / "out.txt").write_text("mine\n")
    (own / "params.yml").write_text("mine: 1\n")
    path = laptop / "set_a" / where if where else laptop / "set_a"
    if path.is_dir():
        shutil.rmtree(path)
        path.symlink_to(own, target_is_directory=True)
    else:
        path.unlink()
        path.symlink_to(own / path.name)
    (remote / "a=2" / "out.txt").write_text("changed\n")
    (remote / "a=1" / "out.txt").write_text("new\n")
    before = {str(p): p.read_bytes() for p in sorted(laptop.rglob("*")) if p.is_file() and not p.is_symlink()}
    code, out, err = xmen(capsys, "sync", f"127.0.0.1:{remote}", str(laptop), "--rsh", sshd, "--no-list", "--via", via)
    assert code != 0 and err.strip().splitlines() == [
        f"Error: {path} is a symbolic link; xmen never writes its own files through one (move the link away)"], err
    assert path.is_symlink()
    assert sorted(os.listdir(own)) == ["out.txt", "params.yml"]
    assert (own / "out.txt").read_text() == "mine\n" and (own / "params.yml").read_text() == "mine: 1\n"
    assert {str(p): p.read_bytes() for p in sorted(laptop.rglob("*")) if p.is_file() and not p.is_symlink()} == before
