"""`pyrun images`, `rmi`, `tag`, `image inspect` and `image prune` on pulled images."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from runtime.store import ImageStore
from tests.conftest import run_pyrun
from tests.fixtures.pyrunconfig import write_pyrun_config

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture(scope="module")
def pulled_template(tmp_path_factory, registry):
    """A store with busybox:latest and busybox:zstd (one image ID) and httpd, pulled once."""
    workdir = tmp_path_factory.mktemp("images-template")
    config = write_pyrun_config(workdir / "config.json", registry.url, (), [registry.host])
    env = {"PYRUN_CONFIG": str(config), "PYRUN_ROOT": str(workdir / "root")}
    for name in ("busybox", "busybox:zstd", "httpd"):
        result = run_pyrun("pull", "-q", name, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    return workdir / "root"


@pytest.fixture
def pulled(pulled_template, store_root, registry):
    """The template store, hard-linked into this test's root (tests only unlink files)."""
    subprocess.run(["cp", "-a", "--link", f"{pulled_template}/.", str(store_root)], check=True)
    return registry.images


def pyrun(env, *args, **kwargs):
    return run_pyrun(*args, env=env, timeout=120, **kwargs)


def test_images_table(pyrun_env, pulled):
    result = pyrun(pyrun_env, "images")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$", lines[0])
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    busybox_id = pulled["library/busybox:latest"].config.digest.removeprefix("sha256:")[:12]
    httpd_id = pulled["library/httpd:latest"].config.digest.removeprefix("sha256:")[:12]
    assert rows == {("busybox", "latest", busybox_id), ("busybox", "zstd", busybox_id),
                    ("httpd", "latest", httpd_id)}
    # Columns line up under their headers.
    column = lines[0].index("IMAGE ID")
    assert all(line[column:column + 12] in (busybox_id, httpd_id) for line in lines[1:])
    assert all(re.search(r"ago +[0-9.]+[kMG]?B$", line) for line in lines[1:])


def test_images_filter_and_quiet(pyrun_env, pulled):
    result = pyrun(pyrun_env, "images", "busybox")
    assert len(result.stdout.splitlines()) == 3
    result = pyrun(pyrun_env, "image", "ls", "-q", "busybox:zstd")
    assert result.stdout.split() == [
        pulled["library/busybox:zstd"].config.digest.removeprefix("sha256:")[:12]]


def test_images_digests_column(pyrun_env, pulled):
    result = pyrun(pyrun_env, "images", "--digests", "httpd")
    assert pulled["library/httpd:latest"].digest in result.stdout


def test_images_format(pyrun_env, pulled):
    lines = pyrun(pyrun_env, "images", "--format", "{{.Repository}}:{{.Tag}}", "busybox").stdout.split()
    assert sorted(lines) == ["busybox:latest", "busybox:zstd"]
    table = pyrun(pyrun_env, "images", "--format", "table {{.ID}}\\t{{.Repository}}", "httpd").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "ID", "REPOSITORY"]
    assert table[1].split() == [pulled["library/httpd:latest"].config.digest.removeprefix("sha256:")[:12], "httpd"]
    rows = [json.loads(line) for line in pyrun(pyrun_env, "images", "--format", "json", "httpd").stdout.splitlines()]
    assert [(row["Repository"], row["Tag"]) for row in rows] == [("httpd", "latest")]
    wrong = pyrun(pyrun_env, "images", "--format", "{{.Colour}}")
    assert wrong.returncode == 125
    assert "there is no field 'Colour'" in wrong.stderr


def test_tag_then_rmi_untags(pyrun_env, pulled, store_root):
    assert pyrun(pyrun_env, "tag", "httpd", "myweb:v1").returncode == 0
    store = ImageStore(store_root)
    assert store.lookup("myweb:v1").id == store.lookup("httpd").id
    result = pyrun(pyrun_env, "rmi", "myweb:v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Untagged: myweb:v1\n"
    assert store.lookup("httpd") is not None


def test_rmi_last_name_deletes_image_and_layers(pyrun_env, pulled, store_root):
    store = ImageStore(store_root)
    image = store.lookup("httpd")
    result = pyrun(pyrun_env, "rmi", "httpd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Untagged: httpd:latest",
        f"Untagged: httpd@{pulled['library/httpd:latest'].digest}",
        f"Deleted: {image.id}",
    ]
    assert store.lookup(image.id) is None
    assert not any(os.path.exists(d) for d in image.layer_dirs)
    assert store.lookup("busybox") is not None


def test_rmi_by_id_with_two_names_needs_force(pyrun_env, pulled):
    image_id = pulled["library/busybox:latest"].config.digest
    result = pyrun(pyrun_env, "rmi", image_id[7:19])
    assert result.returncode == 1
    assert "must be forced" in result.stderr
    result = pyrun(pyrun_env, "image", "rm", "-f", image_id[7:19])
    assert result.returncode == 0, result.stderr
    assert f"Deleted: {image_id}" in result.stdout


def test_rmi_image_used_by_container(pyrun_env, pulled, store_root):
    image_id = pulled["library/httpd:latest"].config.digest
    container = store_root / "containers" / ("a" * 64)
    container.mkdir(parents=True)
    (container / "state.json").write_text(json.dumps({"image_id": image_id}))
    result = pyrun(pyrun_env, "rmi", "httpd")
    assert result.returncode == 1
    assert "container aaaaaaaaaaaa is using it" in result.stderr
    result = pyrun(pyrun_env, "rmi", "-f", "httpd")
    assert result.returncode == 0, result.stderr
    assert ImageStore(store_root).lookup(image_id) is not None


def test_rmi_missing_image(pyrun_env, store_root):
    result = pyrun(pyrun_env, "rmi", "nothere")
    assert result.returncode == 1
    assert "no such image: nothere" in result.stderr


def test_inspect_json(pyrun_env, pulled):
    result = pyrun(pyrun_env, "image", "inspect", "httpd")
    assert result.returncode == 0, result.stderr
    [document] = json.loads(result.stdout)
    fixture = pulled["library/httpd:latest"]
    assert document["Id"] == fixture.config.digest
    assert document["RepoTags"] == ["httpd:latest"]
    assert document["RepoDigests"] == [f"httpd@{fixture.digest}"]
    assert document["Config"]["Cmd"] == ["httpd-foreground"]
    assert document["Config"]["WorkingDir"] == "/usr/local/apache2"
    assert document["Config"]["StopSignal"] == "SIGWINCH"
    assert document["Os"] == "linux"
    assert document["Architecture"] == "amd64"
    assert len(document["RootFS"]["Layers"]) == 2
    assert document["Size"] > 0


def test_inspect_missing_image(pyrun_env):
    # As `docker image inspect`: an error on stderr and status 1.
    result = pyrun(pyrun_env, "image", "inspect", "nothere")
    assert result.returncode == 1
    assert "no such image: nothere" in result.stderr
    assert json.loads(result.stdout) == []


def test_inspect_prints_the_images_found(pyrun_env, pulled):
    result = pyrun(pyrun_env, "image", "inspect", "-f", "{{.Config.Cmd}}", "nothere", "httpd")
    assert result.returncode == 1
    assert result.stdout == "[httpd-foreground]\n"
    assert "no such image: nothere" in result.stderr


def test_prune_removes_dangling_only(pyrun_env, pulled, store_root):
    store = ImageStore(store_root)
    httpd = store.lookup("httpd")
    # Point httpd's name at busybox: the old httpd image is now dangling.
    assert pyrun(pyrun_env, "tag", "busybox", "httpd").returncode == 0
    result = pyrun(pyrun_env, "image", "prune", "-f")
    assert result.returncode == 0, result.stderr
    assert f"deleted: {httpd.id}" in result.stdout
    assert "Total reclaimed space: " in result.stdout
    assert store.lookup(httpd.id) is None
    assert store.lookup("busybox") is not None


def test_prune_asks_first(pyrun_env, pulled, store_root):
    result = pyrun(pyrun_env, "image", "prune", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in result.stdout
    assert "Total reclaimed space" not in result.stdout
