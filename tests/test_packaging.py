"""The sdist and the wheel build with every warning an error (setuptools'
deprecations included: they turn into failures when their date passes) and
say what fastfutures is: name, version, requires-python, licence expression
(PEP 639), extras.

Builds in isolated environments (fetching setuptools and Cython) and
compiles the extensions: minutes, so marked ``slow`` and ``packaging`` and
run by .ci/run (``python -m pytest -m packaging``).
"""
import email
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import src_path_of

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

build = pytest.importorskip("build", reason="needs the `build` package (the test extra has it)")
metadata = pytest.importorskip("packaging.metadata")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRAS = {"test", "test-core", "bench", "dask", "plot", "otel", "prometheus"}


def source_tree(dest):
    """This checkout's sources (tracked and untracked, not ignored files), or
    the unpacked sdist's, without build products."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            "build", "*.so", "*.c", "*.egg-info", "__pycache__", ".*"))
        return
    for name in filter(None, (n.decode() for n in names)):
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), os.path.join(dest, name))


def run_build(args, log):
    # setuptools' warnings (SetuptoolsDeprecationWarning...) are UserWarnings;
    # "error" for all would also stop pip (its pkg_resources is deprecated).
    env = {**os.environ, "PYTHONWARNINGS": "error::UserWarning"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "build", *args], env=env,
                          capture_output=True, text=True, timeout=1200)
    with open(log, "w") as f:
        f.write(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    for line in (proc.stdout + proc.stderr).splitlines():
        assert "Warning" not in line and "deprecated" not in line, line


def expected_version():
    scope = {}
    with open(os.path.join(src_path_of(sys.modules["conftest"]._load_fastfutures()),
                           "fastfutures", "_version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


def check_metadata(text, where):
    meta = metadata.Metadata.from_email(text, validate=True)
    assert meta.name == "fastfutures", where
    assert str(meta.version) == expected_version(), where
    assert str(meta.requires_python) == ">=3.10", where
    assert meta.license_expression == "MIT", where
    assert meta.license_files == ["LICENSE"], where
    assert not [c for c in meta.classifiers or () if c.startswith("License ::")], where
    assert "Programming Language :: Python :: 3.15" in meta.classifiers, where
    assert set(meta.provides_extra) == EXTRAS, where
    assert not email.message_from_string(text).get_all("License"), where   # PEP 639: no License field


@pytest.mark.timeout(2400)
def test_sdist_and_wheel_build_without_warnings_and_say_what_they_are(tmp_path):
    src = tmp_path / "src"
    source_tree(src)
    dist = tmp_path / "dist"
    run_build(["--sdist", "--outdir", str(dist), str(src)], tmp_path / "sdist.log")
    (sdist,) = dist.glob("fastfutures-*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = os.path.commonpath(tar.getnames())
        check_metadata(tar.extractfile(f"{top}/PKG-INFO").read().decode(), "sdist")
        assert f"{top}/LICENSE" in tar.getnames()
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))

    # The wheel from the sdist, as pip builds it for a user.
    run_build(["--wheel", "--outdir", str(dist), str(tmp_path / "unpacked" / top)],
              tmp_path / "wheel.log")
    (wheel,) = dist.glob("fastfutures-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        info = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        check_metadata(whl.read(info).decode(), "wheel")
        assert info.replace("METADATA", "licenses/LICENSE") in whl.namelist()
