"""`--recipe NAME` looks in real directories, in the documented order: a path given, then
the user's recipes, then the shipped ones; the shipped recipes reach the host under the
names the goldens carry (`make install`, the first run as root)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.paths import hooks_dir, project_root
from imagefactory.testrun.recipe_install import (
    STAMP_PREFIX,
    install_on_first_run,
    install_shipped,
    shipped_source,
)
from imagefactory.testrun.recipe_paths import RecipeSearch, find_recipe, shipped_names
from imagefactory.testrun.selection import Recipe

SHIPPED = shipped_source()
NAMES = ["arc-pressure", "dedup-pressure", "encryption-verify", "pool-corruption-block",
         "replication-chaos"]  # fmt: skip


@pytest.fixture
def search(tmp_path: Path) -> RecipeSearch:
    user = tmp_path / "var-lib-klab-recipes"
    user.mkdir()
    (user / "my-first-test.sh").write_text("#!/bin/bash\necho mine\n")
    return RecipeSearch(user=user, shipped=SHIPPED)


def test_the_five_documented_recipes_ship() -> None:
    assert shipped_names(SHIPPED) == NAMES


def test_a_path_given_is_that_file(search: RecipeSearch, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my-first-test.sh").write_text("echo the path's\n")
    found = find_recipe(str(elsewhere / "my-first-test.sh"), search)
    assert found == Recipe("my-first-test", (elsewhere / "my-first-test.sh").resolve())


def test_a_relative_path_is_relative_to_the_current_directory(
    search: RecipeSearch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here.sh").write_text("echo here\n")
    monkeypatch.chdir(tmp_path)
    assert find_recipe("./here.sh", search) == Recipe("here", (tmp_path / "here.sh").resolve())
    # A bare name is never a file of the current directory.
    with pytest.raises(UsageError, match="no such recipe"):
        find_recipe("here.sh", search)


def test_the_documented_flow_finds_the_users_copy(search: RecipeSearch) -> None:
    mine = (search.user / "my-first-test.sh").resolve()
    assert find_recipe("my-first-test.sh", search) == Recipe("my-first-test", mine)
    assert find_recipe("my-first-test", search) == Recipe("my-first-test", mine)


def test_a_users_recipe_wins_over_a_shipped_one_of_the_same_name(search: RecipeSearch) -> None:
    (search.user / "pool-corruption-block.sh").write_text("echo edited\n")
    found = find_recipe("pool-corruption-block.sh", search)
    assert found.source == (search.user / "pool-corruption-block.sh").resolve()


@pytest.mark.parametrize("spelling", ["pool-corruption-block", "pool-corruption-block.sh"])
def test_a_shipped_recipe_runs_from_the_goldens_copy(search: RecipeSearch, spelling: str) -> None:
    assert find_recipe(spelling, search) == Recipe("pool-corruption-block", None)


@pytest.mark.parametrize("text", ["nosuch", "nosuch.sh", "./nosuch.sh", "/nonexistent/x.sh"])
def test_an_unknown_recipe_is_a_usage_error_that_says_where_to_put_one(
    search: RecipeSearch, text: str
) -> None:
    with pytest.raises(UsageError) as err:
        find_recipe(text, search)
    assert err.value.exit_status == 2
    if "/" not in text:
        assert err.value.hint is not None and str(search.user) in err.value.hint
        assert "pool-corruption-block" in err.value.hint


@pytest.mark.parametrize("text", ["a b", "$(x)", "-rf", ".hidden", "x;y"])
def test_hostile_names_are_refused(search: RecipeSearch, text: str) -> None:
    with pytest.raises(UsageError):
        find_recipe(text, search)


def test_user_recipes_live_under_var_lib_as_root_and_xdg_data_otherwise(tmp_path: Path) -> None:
    code = "from imagefactory import settings; print(settings.user_recipes_dir())"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONPATH": str(project_root())}
    if os.geteuid() != 0:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        assert out.strip() == str(tmp_path / "data" / "klab" / "recipes")
        return
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "/var/lib/klab/recipes"
    tmp_path.chmod(0o755)
    as_nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-c", code],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert as_nobody.returncode == 0, as_nobody.stderr
    assert as_nobody.stdout.strip() == str(tmp_path / "data" / "klab" / "recipes")


def _installed(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


EXPECTED = {"_lib.sh": 0o644, **{f"{n}.sh": 0o755 for n in NAMES}}


def test_install_shipped_copies_missing_files_and_keeps_edited_ones(tmp_path: Path) -> None:
    target = tmp_path / "usr-local-share-klab-recipes"
    written = install_shipped(target, SHIPPED)
    assert _installed(target) == EXPECTED
    assert {p.name for p in written} == set(EXPECTED)
    for name in EXPECTED:
        assert (target / name).read_bytes() == (SHIPPED / name).read_bytes()
    (target / "arc-pressure.sh").write_text("echo edited by the admin\n")
    (target / "dedup-pressure.sh").unlink()
    again = install_shipped(target, SHIPPED)
    assert [p.name for p in again] == ["dedup-pressure.sh"]
    assert (target / "arc-pressure.sh").read_text() == "echo edited by the admin\n"


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the first-run install is root's only")


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    """A copy of the shipped recipes this test may add to."""
    copy = tmp_path / "shipped"
    copy.mkdir()
    for file in SHIPPED.glob("*.sh"):
        (copy / file.name).write_bytes(file.read_bytes())
    return copy


@as_root
def test_the_first_root_run_installs_once_and_keeps_edited_files(
    shipped_copy: Path, tmp_path: Path
) -> None:
    target = tmp_path / "usr-local-share-klab-recipes"
    first = install_on_first_run(shipped_copy, target)
    assert {p.name for p in first} == set(EXPECTED)
    stamp = f"{STAMP_PREFIX}{shipped_copy.stat().st_mtime_ns}"  # hidden, not *.sh
    modes = _installed(target)
    assert modes.pop(stamp) is not None and modes == EXPECTED
    (target / "arc-pressure.sh").write_text("echo edited by the admin\n")
    assert install_on_first_run(shipped_copy, target) == []
    assert (target / "arc-pressure.sh").read_text() == "echo edited by the admin\n"


@as_root
def test_a_deleted_file_comes_back_and_a_new_shipped_recipe_arrives(
    shipped_copy: Path, tmp_path: Path
) -> None:
    target = tmp_path / "usr-local-share-klab-recipes"
    install_on_first_run(shipped_copy, target)
    (target / "dedup-pressure.sh").unlink()
    assert [p.name for p in install_on_first_run(shipped_copy, target)] == ["dedup-pressure.sh"]
    (shipped_copy / "new-recipe.sh").write_text("echo new\n")
    assert [p.name for p in install_on_first_run(shipped_copy, target)] == ["new-recipe.sh"]
    assert len(list(target.glob(f"{STAMP_PREFIX}*"))) == 1  # the older stamp is gone


@as_root
def test_an_unchanged_target_is_only_stat_ed(shipped_copy: Path, tmp_path: Path) -> None:
    """The check is the stamp against the directories' mtimes: a deletion hidden from it
    (the directory's mtime put back) is not looked for, which is what makes it cheap."""
    target = tmp_path / "usr-local-share-klab-recipes"
    install_on_first_run(shipped_copy, target)
    before = target.stat().st_mtime_ns
    (target / "dedup-pressure.sh").unlink()
    os.utime(target, ns=(before, before))
    assert install_on_first_run(shipped_copy, target) == []
    assert not (target / "dedup-pressure.sh").exists()


def test_nothing_shipped_installs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "target"
    assert install_on_first_run(tmp_path / "no-such-dir", target) == []
    assert not target.exists()


def test_make_install_honours_destdir_with_the_goldens_names(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    proc = subprocess.run(
        ["make", "-s", "-C", str(project_root()), "install", f"DESTDIR={dest}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    installed = dest / "usr/local/share/klab/recipes"
    assert _installed(installed) == EXPECTED
    for name in EXPECTED:
        assert (installed / name).read_bytes() == (SHIPPED / name).read_bytes()
    # The golden's names are the same (hooks/ztest/60-payload.sh keeps <name>.sh).
    payload_hook = (hooks_dir() / "ztest" / "60-payload.sh").read_text()
    assert 'place 0755 "$file" "$root/usr/local/share/klab/recipes/$name"' in payload_hook


def test_recipes_do_what_the_documentation_says() -> None:
    corruption = (SHIPPED / "pool-corruption-block.sh").read_text()
    assert "inject -d" in corruption and "-e corrupt" in corruption
    assert "inject -t data" in corruption
    assert "dd if=" not in corruption  # corrupted through zinject, not by writing the vdev
    chaos = (SHIPPED / "replication-chaos.sh").read_text()
    assert "packet_loss lo 5" in chaos and "/dev/tcp/127.0.0.1/" in chaos
    lib = (SHIPPED / "_lib.sh").read_text()
    assert 'tc qdisc add dev "$dev" root netem loss' in lib
    assert 'tc qdisc del dev "$_netem" root' in lib  # the exit trap removes the loss
