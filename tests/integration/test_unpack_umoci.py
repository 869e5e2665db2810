"""Unpacked layers stacked with overlayfs give the same tree as `umoci unpack`.

Each image's layers are unpacked one directory per layer, as the store does,
and mounted read-only with overlayfs. The merged tree is compared file by
file (type, mode, owner, size, content, link target, device, mtime, xattrs)
with the rootfs that `umoci unpack` extracts from the same OCI layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime import syscalls
from runtime.unpack import unpack_layer

pytestmark = pytest.mark.root

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
if not TESTDATA.is_dir():
    TESTDATA = Path("/work/shared/testdata")
TAG = "test"
REF_NAME = "org.opencontainers.image.ref.name"


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian package {tool})")


def third_party_file(relative: str) -> Path:
    """Return a file of the third-party test data, or skip when it is absent."""
    path = TESTDATA / relative
    if not path.exists():
        pytest.skip(f"test data {path} is missing: it lives in shared/testdata beside the repository")
    return path


# -- OCI layouts ----------------------------------------------------------------------


def layout_from_oci_archive(archive: Path, layout: Path) -> Path:
    """Extract an OCI layout archive and tag its first manifest, so umoci can name it."""
    layout.mkdir()
    with tarfile.open(archive) as source:
        members = source.getmembers()
        # Third-party input: plain files and directories inside `layout` only.
        # Debian 12's Python 3.11.2 has no extraction filters to check this.
        for member in members:
            if not (member.isfile() or member.isdir()) or member.name.startswith("/") \
                    or ".." in Path(member.name).parts:
                raise AssertionError(f"unexpected member {member.name!r} in {archive}")
        source.extractall(layout, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].setdefault("annotations", {})[REF_NAME] = TAG
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def layout_from_docker_archive(archive: Path, layout: Path) -> Path:
    require("skopeo")
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{layout}:{TAG}"],
                   check=True, capture_output=True)
    return layout


def layout_from_layer_tars(layers: list[Path], layout: Path) -> Path:
    """Build an image from plain layer tars with umoci, which gzips each one."""
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:{TAG}"], check=True)
    for layer in layers:
        subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:{TAG}", str(layer)], check=True)
    return layout


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_digest


def read_manifest(layout: Path) -> tuple[dict, dict]:
    """Return the manifest tagged TAG in `layout` and its image config."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = next(m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == TAG)
    manifest = json.loads(blob_path(layout, descriptor["digest"]).read_text())
    config = json.loads(blob_path(layout, manifest["config"]["digest"]).read_text())
    return manifest, config


# -- pyrun's side and umoci's side ------------------------------------------------------


def unpack_image(layout: Path, store: Path) -> list[Path]:
    """Unpack every layer of the image into its own directory, lowest first."""
    manifest, config = read_manifest(layout)
    layer_dirs: list[Path] = []
    for number, layer in enumerate(manifest["layers"]):
        dest = store / f"layer{number}"
        dest.mkdir(parents=True)
        diff_id = unpack_layer(blob_path(layout, layer["digest"]), dest,
                               media_type=layer["mediaType"], digest=layer["digest"], lowers=layer_dirs)
        assert diff_id == config["rootfs"]["diff_ids"][number]
        layer_dirs.append(dest)
    return layer_dirs


@contextmanager
def overlay(layer_dirs: list[Path], work: Path):
    """Mount the layers read-only with overlayfs; yield the merged directory."""
    # overlayfs needs two lower directories when there is no upper one.
    empty = work / "empty"
    merged = work / "merged"
    empty.mkdir()
    merged.mkdir()
    lowers = ":".join(str(d) for d in reversed([empty, *layer_dirs]))
    syscalls.mount("overlay", str(merged), "overlay", syscalls.MS_RDONLY, f"lowerdir={lowers}")
    try:
        yield merged
    finally:
        syscalls.umount2(str(merged))


def umoci_rootfs(layout: Path, bundle: Path) -> Path:
    result = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{TAG}", str(bundle)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"umoci unpack failed: {result.stderr}")
    return bundle / "rootfs"


def describe(root: Path) -> dict[str, tuple]:
    """Describe every path under `root` (not `root` itself) for comparison."""
    result = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                detail = ""
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            xattrs = {}
            for xattr in os.listxattr(path, follow_symlinks=False):
                if not xattr.startswith("trusted.overlay."):
                    xattrs[xattr] = os.getxattr(path, xattr, follow_symlinks=False)
            result[str(path.relative_to(root))] = (
                oct(kind), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, size, detail,
                st.st_mtime_ns, sorted(xattrs.items()),
            )
    return result


def assert_same_tree(merged: Path, reference: Path) -> None:
    ours = describe(merged)
    theirs = describe(reference)
    assert sorted(ours) == sorted(theirs), "the two trees hold different paths"
    different = {path: (ours[path], theirs[path]) for path in ours if ours[path] != theirs[path]}
    assert different == {}, "(pyrun, umoci) differ for these paths"


def compare_with_umoci(layout: Path, work: Path, umoci_layout: Path | None = None) -> int:
    """Unpack with pyrun and with umoci, compare, and return the number of paths.

    `umoci_layout` is an image with the same content for umoci to unpack,
    when umoci cannot read `layout` itself.
    """
    layer_dirs = unpack_image(layout, work / "store")
    reference = umoci_rootfs(umoci_layout or layout, work / "bundle")
    with overlay(layer_dirs, work) as merged:
        assert_same_tree(merged, reference)
        return len(describe(merged))


# -- The images -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def tools():
    require("umoci")


def test_docker_save_busybox_matches_umoci(tmp_path):
    layout = layout_from_docker_archive(third_party_file("dive/test-docker-image.tar"), tmp_path / "layout")
    manifest, _ = read_manifest(layout)
    assert len(manifest["layers"]) == 14
    assert compare_with_umoci(layout, tmp_path) > 300


@pytest.mark.parametrize("compression", ["gzip", "uncompressed"])
def test_oci_archive_matches_umoci(tmp_path, compression):
    archive = third_party_file(f"dive/test-oci-{compression}-image.tar")
    layout = layout_from_oci_archive(archive, tmp_path / "layout")
    assert compare_with_umoci(layout, tmp_path) == 1


def test_zstd_archive_matches_umoci(tmp_path):
    # umoci 0.4.7 (Debian 12) rejects zstd layers, so it unpacks the
    # uncompressed archive of the same image instead.
    layout = layout_from_oci_archive(third_party_file("dive/test-oci-zstd-image.tar"), tmp_path / "layout")
    same = layout_from_oci_archive(third_party_file("dive/test-oci-uncompressed-image.tar"), tmp_path / "same")
    assert compare_with_umoci(layout, tmp_path, umoci_layout=same) == 1


def test_whiteout_layers_match_umoci(tmp_path):
    layers = [third_party_file("regclient/layer.tar"), third_party_file("regclient/layer-wh.tar")]
    layout = layout_from_layer_tars(layers, tmp_path / "layout")
    assert compare_with_umoci(layout, tmp_path) == 3


@pytest.mark.registry
@pytest.mark.slow
@pytest.mark.parametrize(
    "reference, minimum_paths",
    [("library/httpd:latest", 5000), ("library/busybox:latest", 200), ("library/manylayers:latest", 200)],
)
def test_fixture_image_matches_umoci(tmp_path, registry, require_image, reference, minimum_paths):
    require("skopeo")
    require_image(reference)
    layout = tmp_path / "layout"
    source = f"docker://{registry.host}/{reference}"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", source, f"oci:{layout}:{TAG}"],
                   check=True, capture_output=True)
    assert compare_with_umoci(layout, tmp_path) >= minimum_paths
