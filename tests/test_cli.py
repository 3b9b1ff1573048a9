"""The `forgery-detect` command: screening from any folder, with the defaults shipped in the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from screening_inputs import authentic_figure, figures_pdf, forged_figure, save_png
from stages import cli
from stages.common.config import PACKAGED_PARAMS_FILE, load_params

REPO = Path(__file__).resolve().parents[1]


def figures(folder: Path) -> Path:
    save_png(folder / "forged.png", forged_figure())
    save_png(folder / "clean.png", authentic_figure())
    return folder


def test_the_packaged_defaults_are_the_repositorys_params():
    assert PACKAGED_PARAMS_FILE.read_text() == (REPO / "params.yaml").read_text()
    load_params(PACKAGED_PARAMS_FILE)


def test_predict_from_an_empty_folder_uses_the_packaged_defaults_and_says_so(tmp_path, monkeypatch, capsys):
    images = figures(tmp_path / "figures")
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.main(["predict", "--images", str(images), "--detector", "keypoint", "--report", "out"]) == 0
    assert "using the defaults shipped with the package" in capsys.readouterr().err
    calls = pd.read_csv(work / "reports" / "submission.csv", dtype=str).set_index("case_id")["annotation"]
    assert calls["clean"] == "authentic" and calls["forged"] != "authentic"
    assert (work / "out" / "index.html").is_file() and (work / "out" / "overlays" / "forged.png").is_file()


def test_score_and_pdf_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    figures_pdf(tmp_path / "paper.pdf", [forged_figure()])
    assert cli.main(["predict", "--pdf", "paper.pdf", "--detector", "keypoint", "--out", "sub.csv"]) == 0
    pd.DataFrame({"case_id": ["paper-p1-i1"], "annotation": ["authentic"], "shape": ["authentic"]}).to_csv(
        "solution.csv", index=False)
    assert cli.main(["score", "--solution", "solution.csv", "--submission", "sub.csv"]) == 0
    assert '"score": 0.0' in capsys.readouterr().out  # the forged call against an authentic truth


def test_an_unknown_command_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_pip_install_then_screen_from_an_empty_folder(tmp_path):
    """`pip install .` into a fresh virtual environment, then `forgery-detect predict` from an empty folder.

    The environment sees the system's packages (torch is never installed twice), so the test also
    checks that the package, its template and its default params come from the installed wheel.
    """
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "params.yaml"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "stages", source / "stages", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # Without a pip of its own the environment uses the system's pip and setuptools, the ones the
    # project is installed with: Python 3.11's bundled setuptools cannot build a wheel without the
    # `wheel` package.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
                   check=True, cwd=tmp_path)
    images = figures(tmp_path / "figures")
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [python, "-c", "import stages, stages.common.config as c, stages.common.report.writer as w;"
                       "print(stages.__file__); print(c.PACKAGED_PARAMS_FILE); print(w.template().filename)"],
        cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for path in where:
        assert Path(path).resolve().is_relative_to(Path(site).resolve()), (path, site)
    assert Path(where[1]).is_file() and not Path(where[1]).is_symlink()

    done = subprocess.run([venv / "bin" / "forgery-detect", "predict", "--images", str(images),
                           "--detector", "keypoint", "--report", "out/"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "using the defaults shipped with the package" in done.stderr
    assert where[1] in done.stderr  # it names the installed defaults it used
    assert (work / "out" / "index.html").is_file() and (work / "out" / "overlays" / "forged.png").is_file()
