"""Every project keeps the shared layout, and its command line answers without loading TensorFlow."""

import ast
import json
import re

import pytest

from common.runs import REPOSITORY
from helpers import run_subprocess

pytestmark = pytest.mark.backend_independent

PROJECTS = sorted(p.name for p in (REPOSITORY / "projects").iterdir() if (p / "__main__.py").is_file())
# Projects of experiments rather than one trained model: one command per experiment, and a bench of them all.
EXPERIMENT_PROJECTS = ("foundations",)
TRAINING_PROJECTS = [project for project in PROJECTS if project not in EXPERIMENT_PROJECTS]
LAYOUT = ("__init__.py", "__main__.py", "train.py", "model.py", "data.py", "bench.py", "README.md")
EXPERIMENT_LAYOUT = ("__init__.py", "__main__.py", "bench.py", "README.md")
USER_MODULES = ("predict.py", "generate.py", "stylize.py", "convert.py", "vectors.py", "play.py")
HEAVY = ("keras", "tensorflow", "jax")
BACKENDS = ("tensorflow", "jax")  # only common/backend.py imports them

# In one fresh process, for each project in turn: import its command line and its train module (an
# experiments project: its bench, which runs them all), ask for `--help`, give `train` (`bench`) a bad
# flag, and note which deep-learning libraries are loaded by then.
# A library loaded by one project stays loaded, so the first project that names it is the one to blame.
COMMAND_LINES = """
import contextlib, io, json, runpy, sys, importlib
heavy, found = {heavy!r}, {{}}
def run(project, *args):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [project, *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(project, run_name="__main__")
            status = 0
        except SystemExit as exit:
            status = exit.code
    return {{"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}}
for project in {projects!r}:
    experiments = project in {experiment_projects!r}
    importlib.import_module(f"projects.{{project}}." + ("bench" if experiments else "train"))
    found[project] = {{
        "help": run(f"projects.{{project}}", "--help"),
        "bad_flag": run(f"projects.{{project}}", *(("bench", "--experiments", "lots") if experiments else ("train", "--epochs", "lots"))),
        "loaded": sorted(name for name in heavy if name in sys.modules),
    }}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def command_lines():
    result = run_subprocess("-c", COMMAND_LINES.format(heavy=HEAVY, projects=PROJECTS, experiment_projects=EXPERIMENT_PROJECTS))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def imports(path):
    """The modules a Python file imports, at any depth."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_there_are_projects():
    assert len(PROJECTS) >= 7


@pytest.mark.parametrize("project", TRAINING_PROJECTS)
def test_project_has_the_layout(project):
    folder = REPOSITORY / "projects" / project
    missing = [name for name in LAYOUT if not (folder / name).is_file()]
    assert not missing, f"{project} lacks {missing}"
    assert any((folder / name).is_file() for name in USER_MODULES), f"{project} has no module for trained models' users"
    assert (folder / "assets").is_dir()


@pytest.mark.parametrize("project", EXPERIMENT_PROJECTS)
def test_experiments_project_has_the_layout_less_training(project):
    folder = REPOSITORY / "projects" / project
    missing = [name for name in EXPERIMENT_LAYOUT if not (folder / name).is_file()]
    assert not missing, f"{project} lacks {missing}"
    assert (folder / "assets").is_dir()
    trained = [name for name in ("train.py", "model.py", "evaluate.py") if (folder / name).exists()]
    assert not trained, f"{project} runs experiments, yet has {trained}"


@pytest.mark.parametrize("project", PROJECTS)
def test_projects_import_only_common_and_themselves(project):
    for path in (REPOSITORY / "projects" / project).rglob("*.py"):
        shown = path.relative_to(REPOSITORY)
        for module in imports(path):
            assert not module.startswith(BACKENDS), f"{shown} imports {module}: backend code belongs in common/backend.py"
            if module.startswith("projects."):
                assert module.startswith(f"projects.{project}"), f"{shown} imports {module}"
            assert not module.endswith("__main__"), f"{shown} imports {module}: nothing imports a command line"


def test_readme_says_which_project_offers_which_flag():
    import dataclasses
    import importlib

    text = (REPOSITORY / "README.md").read_text()
    table = text[text.index("<!-- support:start -->"):text.index("<!-- support:end -->")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[3:])}
    assert sorted(rows) == TRAINING_PROJECTS  # the projects with a train Config
    for project in TRAINING_PROJECTS:
        fields = {f.name for f in dataclasses.fields(importlib.import_module(f"projects.{project}.train").Config)}
        offered = ["yes" if name in fields else "no" for name in ("mixed_precision", "distribute")]
        assert rows[project][2:] == offered, project


def test_common_knows_no_project():
    for path in (REPOSITORY / "common").glob("*.py"):
        assert not [m for m in imports(path) if m.startswith("projects")], path.name
        assert not re.search(r"projects\.\w+\.", path.read_text()), f"{path.name} names a project's module"


@pytest.mark.parametrize("project", PROJECTS)
def test_command_line_loads_no_deep_learning_library(project, command_lines):
    loaded = command_lines[project]["loaded"]
    assert loaded == [], f"{project}'s command line (import, --help, a bad flag) loads {loaded}"


@pytest.mark.parametrize("project", PROJECTS)
def test_help_and_argument_errors_are_quiet(project, command_lines):
    help, bad_flag = command_lines[project]["help"], command_lines[project]["bad_flag"]
    assert help["status"] == 0 and help["stderr"] == "", help
    command, flag = ("bench", "--experiments") if project in EXPERIMENT_PROJECTS else ("train", "--epochs")
    assert help["stdout"].startswith(f"usage: python -m projects.{project}") and command in help["stdout"], help
    assert bad_flag["status"] == 2 and bad_flag["stdout"] == "", bad_flag
    assert re.fullmatch(rf"error: argument {flag}: .*'lots'.*\n", bad_flag["stderr"]), bad_flag
