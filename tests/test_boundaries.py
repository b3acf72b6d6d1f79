"""The import boundaries the architecture depends on, checked in fresh interpreters."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Modules only a worker or the retrain command imports; everything else is the web process.
WORKER_ONLY = {"xrayweb.inference.runtime", "xrayweb.inference.retraining"}


def _run(code: str, env_extra: dict | None = None, tmp_path: Path | None = None) -> None:
    import os

    env = os.environ | (env_extra or {})
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_web_process_serves_pages_and_api_without_importing_torch(tmp_path):
    code = f"""
import os, pkgutil, importlib, io, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "xrayweb.settings"
import django
django.setup()
import xrayweb
for mod in pkgutil.walk_packages(xrayweb.__path__, "xrayweb."):
    if mod.name not in {sorted(WORKER_ONLY)!r} and ".migrations" not in mod.name:
        importlib.import_module(mod.name)
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("demo_users", password="pw-Test-12345", stdout=io.StringIO())
from django.test import Client
from PIL import Image
client = Client()
login = {{"username": "staff", "password": "pw-Test-12345"}}
assert client.post("/accounts/login/", login).status_code == 302
buf = io.BytesIO(); Image.new("L", (64, 64), 90).save(buf, "PNG"); buf.seek(0); buf.name = "x.png"
r = client.post("/upload/", {{"patient_id": "P", "accession": "A", "images": [buf]}}, follow=True)
assert "1 image(s) queued" in r.content.decode(), r.content
for url in ["/upload/", "/worklist/", "/studies/1/", "/api/studies/", "/api/studies/1/"]:
    assert client.get(url).status_code == 200, url
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision")))
assert not loaded, loaded[:5]
"""
    _run(code, {"XRAYWEB_DATA_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""})


def test_classifier_and_training_never_import_django():
    code = """
import importlib, pkgutil, sys
import classifier, training
for package in (classifier, training):
    for mod in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(mod.name)
import classifier.predictor, training.ensemble.loop
assert "torch" in sys.modules
assert not [m for m in sys.modules if m == "django" or m.startswith("django.")]
"""
    _run(code)
    for package in ("classifier", "training"):
        for path in (ROOT / package).rglob("*.py"):
            assert not _top_level_imports(path) & {"django", "xrayweb"}, path


def _top_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports, anywhere in it (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
    return names


def test_classifier_imports_neither_training_nor_tests():
    """The arrows run xrayweb -> training -> classifier: the library reads no recipe, card
    writer or test data of the layers above it (its benchmark takes its films as an argument)."""
    for path in (ROOT / "classifier").rglob("*.py"):
        assert not _top_level_imports(path) & {"training", "tests"}, path
        assert '"tests"' not in path.read_text(), f"{path} names the tests folder"


def test_reading_bundle_metadata_does_not_import_torch(tiny_bundle):
    _run(f"""
import sys, classifier
meta = classifier.read_metadata({str(tiny_bundle)!r})
assert meta.classes[0] == "covid19"
assert "torch" not in sys.modules
""")


def test_the_worker_parent_loads_tasks_without_torch_so_cuda_is_never_touched_before_fork():
    # What `celery -A xrayweb worker` does in the prefork parent: load the app and its tasks.
    _run("""
import sys
from xrayweb.celery import app
app.loader.import_default_modules()
assert "xrayweb.inference.tasks.predict_study" in app.tasks
assert "torch" not in sys.modules
""")


TOP_LEVEL = {
    "manage.py",
    "pyproject.toml",
    "README.md",
    "xrayweb",
    "classifier",
    "training",
    "templates",
    "static",
    "tests",
    "docker",
    "Makefile",
    ".ci",
    ".gitignore",
}


def test_the_repository_top_level_holds_only_the_fixed_entries():
    """A stray file at the top (an SQLite database a test once created there) fails here."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed, "git ls-files listed nothing"
    assert {path.split("/")[0] for path in listed} <= TOP_LEVEL


# Inside xrayweb, apps import downwards only: a lower rank never imports a higher one, and apps
# of one rank never import each other. dicomnet (the DICOM node) sits above review: it sends
# predictions and final readings out. ops (health, status, reconcile) sits beside api: both
# may use everything below them and neither imports the other. directory (sign-in from the
# hospital's LDAP) sits above accounts and audit: it sets roles and sites, and audits what
# the directory did. Project-level modules (xrayweb.errors, .downloads, .celery, .brokers,
# .publishing, .settings, .directory_config) are shared by every
# app and import none; xrayweb.urls and xrayweb.wsgi are the top that wires the apps together.
APP_RANKS = {
    "accounts": 0,
    "audit": 0,
    "directory": 1,
    "studies": 1,
    "inference": 2,
    "review": 3,
    "dicomnet": 4,
    "api": 5,
    "ops": 5,
}
SHARED = {
    "errors",
    "downloads",
    "celery",
    "brokers",
    "publishing",
    "settings",
    "directory_config",
}


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """Every ``xrayweb.*`` module a file imports, and whether the import is inside a function
    (run when called, not when the module loads)."""
    found = []

    def visit(node, lazy: bool):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, "relative imports hide the layer; import xrayweb.<app>"
                found.extend((f"{child.module}.{a.name}", inner) for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return [(name, lazy) for name, lazy in found if name.startswith("xrayweb.")]


def _allowed_upwards(importer: Path, target: str, lazy: bool) -> bool:
    """The one exception: a task module or a management command may import another app's
    ``tasks`` inside a function, to enqueue work or run it in place. It is lazy so that the
    lower app loads without the upper one (and the worker parent without torch); nothing of
    the kind is needed today, and a service never needs it (studies announce a new study with
    a signal, xrayweb.studies.signals, that inference connects to)."""
    caller = importer.name == "tasks.py" or importer.parent.name == "commands"
    return lazy and caller and target.split(".")[2:3] == ["tasks"]


def test_apps_import_only_downwards():
    wrong = []
    for app, rank in APP_RANKS.items():
        for path in sorted((ROOT / "xrayweb" / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for target, lazy in _imports(ast.parse(path.read_text())):
                other = target.split(".")[1]
                if other == app or other not in APP_RANKS:
                    continue
                if APP_RANKS[other] < rank or _allowed_upwards(path, target, lazy):
                    continue
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "\n".join(wrong)
    apps = {p.name for p in (ROOT / "xrayweb").iterdir() if (p / "apps.py").is_file()}
    assert apps == set(APP_RANKS), "give a new app its rank in APP_RANKS"


def test_project_level_modules_the_apps_share_import_no_app():
    for name in sorted(SHARED):
        targets = _imports(ast.parse((ROOT / "xrayweb" / f"{name}.py").read_text()))
        assert not [t for t, _ in targets if t.split(".")[1] in APP_RANKS], name
    modules = {p.stem for p in (ROOT / "xrayweb").glob("*.py")}
    assert modules == SHARED | {"__init__", "urls", "wsgi"}, "a new project module: shared?"
