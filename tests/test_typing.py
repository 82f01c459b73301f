"""The shipped type stubs: mypy accepts typed use of the API and rejects misuse.

Runs mypy (and mypy's stubtest) in a subprocess against whichever fastfutures
this session imports: an installed wheel (found through site-packages, which
also proves the wheel ships its .pyi files and py.typed) or a source checkout
on PYTHONPATH (handed to mypy through MYPYPATH).  Skipped without mypy.
"""
import importlib.util
import os
import re
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import fastfutures

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "typing_example.py"
ALLOWLIST = HERE / "stubtest_allowlist.txt"

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed"),
    # The stubs are the same for every build; on a free-threaded build mypy
    # may run uncompiled and take minutes, so the GIL builds check them.
    pytest.mark.skipif(
        bool(sysconfig.get_config_var("Py_GIL_DISABLED")), reason="stubs are checked on the GIL builds"
    ),
]


def _site_dirs():
    dirs = set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    paths = sysconfig.get_paths()
    dirs.update((paths["purelib"], paths["platlib"]))
    return {Path(d).resolve() for d in dirs}


@pytest.fixture(scope="module")
def mypy_env():
    """Environment in which mypy sees the fastfutures this session imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "MYPY_CACHE_DIR")}
    package_parent = Path(fastfutures.__file__).resolve().parent.parent
    if package_parent not in _site_dirs():
        # A source checkout: mypy refuses site-packages in MYPYPATH, so this
        # is only for the not-installed case.
        env["MYPYPATH"] = str(package_parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_parent), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def run_mypy(mypy_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mypy")   # no project config file here
    cache_dir = workdir / ".mypy_cache"         # shared: only the first run is cold

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
             "--cache-dir", str(cache_dir), *map(str, args)],
            cwd=workdir, env=mypy_env, capture_output=True, text=True, timeout=600,
        )
        return proc.returncode, proc.stdout + proc.stderr

    run.workdir = workdir
    return run


def _error_lines(output, filename):
    lines = set()
    for match in re.finditer(r"^(.*?):(\d+): error:", output, re.MULTILINE):
        if Path(match.group(1)).name == filename:
            lines.add(int(match.group(2)))
    return lines


def test_typed_example_is_clean(run_mypy):
    code, output = run_mypy(EXAMPLE)
    assert code == 0, output


def test_typed_example_runs(mypy_env):
    # The example's types are only worth something if the runtime agrees.
    proc = subprocess.run([sys.executable, str(EXAMPLE)], env=mypy_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "typing example ok" in proc.stdout


# Each line marked `# error` must be rejected; no other line may be.
MISUSE = """\
import fastfutures
from fastfutures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait

def square(x: int) -> int:
    return x * x

def remember(tag: str, level: int) -> None:
    pass

ex = ThreadPoolExecutor()
wrong: Future[int] = ex.submit(lambda: "x")  # error
ex.submit(square, "3")  # error
ex.submit(square, 1, 2)  # error
ex.submit(square, x=1)
text: str = ex.submit(square, 1).result()  # error
ThreadPoolExecutor(initializer=remember, initargs=("t", 1))
ThreadPoolExecutor(initializer=remember, initargs=(1,))  # error
ProcessPoolExecutor(max_workers="2")  # error
wait([1, 2])  # error
wait([ex.submit(square, 1)], timeout="soon")  # error
for f in as_completed([ex.submit(square, 1)]):
    f.set_result("x")  # error
ex.shutdown(cancel_futures=True)
ex.shutdown(True, True)  # error
fastfutures.Future().no_such_method()  # error
"""


def test_misuse_is_rejected(run_mypy):
    source = run_mypy.workdir / "misuse.py"
    source.write_text(MISUSE)
    expected = {n for n, line in enumerate(MISUSE.splitlines(), 1) if line.endswith("# error")}
    code, output = run_mypy(source)
    assert code == 1, output
    assert _error_lines(output, "misuse.py") == expected, output


BUFFERSIZE = textwrap.dedent("""\
    from fastfutures import ThreadPoolExecutor

    def square(x: int) -> int:
        return x * x

    with ThreadPoolExecutor() as ex:
        results = ex.map(square, [1, 2], buffersize=1)
""")


@pytest.mark.parametrize("version, accepted", [("3.13", False), ("3.14", True)])
def test_map_buffersize_only_from_314(run_mypy, version, accepted):
    source = run_mypy.workdir / "buffersize.py"
    source.write_text(BUFFERSIZE)
    code, output = run_mypy("--python-version", version, source)
    assert (code == 0) == accepted, output
    if not accepted:
        assert _error_lines(output, "buffersize.py") == {7}, output


def _stubbed_submodules():
    package_dir = Path(fastfutures.__file__).resolve().parent
    skip = {"__init__"} if sys.version_info >= (3, 14) else {"__init__", "interpreter"}
    return sorted("fastfutures." + p.stem for p in package_dir.glob("*.pyi") if p.stem not in skip)


def test_stubs_match_runtime(mypy_env, run_mypy):
    # stubtest imports the runtime and compares every stubbed name and
    # signature with it; names the stubs leave out (internals) are ignored.
    # Only the stubbed modules are named: stubtest on the whole package would
    # also type-check the private pure-Python modules.
    modules = _stubbed_submodules()
    assert "fastfutures._future" in modules, "the .pyi files are not installed"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *modules, "--ignore-missing-stub",
         "--allowlist", str(ALLOWLIST)],
        cwd=run_mypy.workdir, env=mypy_env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stub_exports(body, exported, all_names):
    """Names a stub module re-exports and its __all__, for this Python."""
    import ast

    for node in body:
        if isinstance(node, ast.ImportFrom):
            exported.update(alias.asname for alias in node.names if alias.asname == alias.name)
        elif isinstance(node, ast.If):
            # Only `sys.version_info` / `sys.platform` tests, as stubs use.
            condition = eval(compile(ast.Expression(node.test), "<stub>", "eval"), {"sys": sys})
            _stub_exports(node.body if condition else node.orelse, exported, all_names)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "__all__":
                if isinstance(node, ast.Assign):
                    all_names.clear()
                all_names.extend(ast.literal_eval(node.value))


def test_package_stub_exports_what_the_package_does():
    # The facade's stub, checked by hand (stubtest is given the submodules).
    import ast

    stub = ast.parse((Path(fastfutures.__file__).resolve().parent / "__init__.pyi").read_text())
    exported, stub_all = set(), []
    _stub_exports(stub.body, exported, stub_all)
    assert sorted(stub_all) == sorted(fastfutures.__all__)
    assert set(fastfutures.__all__) <= exported
    for name in exported:
        assert hasattr(fastfutures, name), name
