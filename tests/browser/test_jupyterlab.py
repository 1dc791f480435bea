"""The tour notebook in JupyterLab, in a real headless browser: what a student sees after Run All.

JupyterLab starts with its token off on a free loopback port and a temporary root; Playwright (from PyPI) drives
Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it). The tour, prepared for the tiny profile with
`papermill --prepare-only` and its figures sent to a temporary folder, runs all its cells; the test asserts that
figures and a reading rendered and no cell errored, saves screenshots to build/jupyterlab_tour.png and
build/jupyterlab_reading.png and stops the server it started, by its pid. Skipped, with the reason, where Chromium or Playwright is missing.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vwlib.paths import BUILD_DIR
from vwlib.study.notebooks import NOTEBOOKS_DIR, _kernel_name

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason="Chromium is not installed (apt-get install chromium; .ci/run does)")
# Chromium as root in a container, on a machine whose network is closed: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOUR = {"profile": "tiny", "deltas": [0.5, "inf"], "concepts": 2, "device": "cpu"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """(url of the prepared tour in JupyterLab, figures folder, the notebook's file); the server is stopped by its
    pid afterwards."""
    import papermill as pm

    root, figures = tmp_path / "lab", tmp_path / "figures"
    root.mkdir()
    pm.execute_notebook(str(NOTEBOOKS_DIR / "02_tour.ipynb"), str(root / "tour.ipynb"), prepare_only=True,
                        parameters=TOUR | {"out": str(tmp_path / "runs")}, kernel_name=_kernel_name())
    port = _free_port()
    config = tmp_path / "config"
    # Every cell rendered (Lab draws only the cells in view by default), so the test sees every prompt and output.
    tracker = config / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    env = os.environ | {"VWLIB_FIGURES_DIR": str(figures), "JUPYTER_CONFIG_DIR": str(config),
                        "JUPYTERLAB_SETTINGS_DIR": str(config / "lab" / "user-settings")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", "--allow-root",
         f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"), start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/tour.ipynb", figures, root / "tour.ipynb"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_tour_runs_in_jupyterlab_and_shows_its_figures(lab):
    import nbformat

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    url, figures, notebook_file = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        indicator = page.locator(".jp-Notebook-ExecutionIndicator").first
        indicator.wait_for(timeout=60_000)
        page.get_by_text("Python (vwlib)").or_(page.get_by_text("Python 3")).first.wait_for(timeout=60_000)
        time.sleep(3)  # the kernel session settles before Run All (a click while it connects is lost)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        last = page.locator(".jp-Notebook .jp-CodeCell").last
        deadline = time.time() + 150
        while True:  # Run All is done when the last code cell has its execution number and the kernel is idle
            last.scroll_into_view_if_needed()
            prompt = last.locator(".jp-InputArea-prompt").inner_text().strip()
            if re.fullmatch(r"\[\d+\]:", prompt) and indicator.get_attribute("data-status") == "idle":
                break
            if time.time() > deadline:
                page.screenshot(path=str(BUILD_DIR / "jupyterlab_tour_failed.png"))
                pytest.fail(f"the tour did not finish in JupyterLab within 150 s (last cell: {prompt!r})")
            time.sleep(2)
        page.locator(".jp-OutputArea-output img").last.scroll_into_view_if_needed()
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(BUILD_DIR / "jupyterlab_tour.png"))
        rendered = page.locator(".jp-OutputArea-output img").count()
        # the first figure's reading, as a student sees it: the claims, the numbers, the verdicts
        reading = page.locator(".jp-OutputArea-output", has_text="Reading").first
        reading.scroll_into_view_if_needed()
        reading.screenshot(path=str(BUILD_DIR / "jupyterlab_reading.png"))
        tables = page.locator(".jp-OutputArea-output table", has_text="reproduced").count()
        page.keyboard.press("Control+s")  # what Lab ran, as the notebook file: every cell, rendered or not
        time.sleep(3)
        browser.close()
    notebook = nbformat.read(notebook_file, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue")
    assert all(c.execution_count for c in code)  # every cell ran
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 3 and rendered >= 1  # the δ curve, the training curves, the truncation row; drawn in the page
    assert len(list(figures.glob("*.png"))) >= 3  # written to the temporary folder, not figures/
    assert tables >= 1  # a reading rendered as a table under its figure
    assert any("application/vnd.vwlib.reading+json" in o.get("data", {}) for c in code for o in c.outputs)
