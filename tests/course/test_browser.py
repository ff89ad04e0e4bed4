"""A real browser: JupyterLab, started by ``minidocker lab``, opens lesson 02 in headless
Chromium (Debian's, driven by Playwright), runs all its cells, and shows no error, with its
widget (the memory-limit slider) rendered and a screenshot kept in the test's directory.

Lesson 02 is the one with a widget and plots. Run as root, its cells are live: they start
containers in the lesson's own state root, under the test's temporary directory, and its last
cell cleans them up. Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import needs_root
from tests.course.conftest import RunningLab

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
LESSON = "02_cgroups.ipynb"
RUN_ALL_TIMEOUT = 600  # seconds; lesson 02 live takes well under a minute on the CI host

pytestmark = [
    needs_root,  # lesson 02's widget is shown only when its cells run live
    pytest.mark.kernel,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="needs Debian's chromium: SETUP_TEST_TOOLS=1 bash "
                              "scripts/setup.sh installs it, as scripts/test.sh does"),
]
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="needs playwright (the test extra: setup.sh)")


def wait_for_kernel(page, status: str, timeout: float) -> None:
    page.wait_for_selector(f".jp-Notebook-ExecutionIndicator[data-status='{status}']",
                           timeout=timeout * 1000)


def wait_until_done(page, timeout: float, quiet: float = 5) -> None:
    """Run All has finished when the kernel has stayed idle for ``quiet`` seconds (it is
    briefly idle between two cells) and no cell is queued or running."""
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        status = page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status")
        prompts = page.eval_on_selector_all(".jp-Notebook .jp-CodeCell .jp-InputPrompt",
                                            "els => els.map(e => e.textContent.trim())")
        if status == "idle" and "[*]:" not in prompts:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return
        else:
            idle_since = None
        assert page.locator(".jp-Dialog").count() == 0, \
            page.locator(".jp-Dialog").all_inner_texts()
        time.sleep(0.5)
    raise AssertionError(f"the lesson was still running after {timeout}s")


def menu(page, top: str, item: str) -> None:
    page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def save(page, path: Path) -> dict:
    """Save the notebook from the browser (File > Save Notebook) and read what was written."""
    before = path.stat().st_mtime_ns
    menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.stat().st_mtime_ns != before, "File > Save Notebook did not save it"
    time.sleep(0.5)  # written by rename? read it whole
    return json.loads(path.read_text())


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def errors(nb: dict) -> list[str]:
    return [f"cell {i}: {out['ename']}: {out['evalue'][:200]}"
            for i, cell in enumerate(code_cells(nb))
            for out in cell.get("outputs", []) if out["output_type"] == "error"]


def render_every_cell(jupyterlab: RunningLab) -> None:
    """JupyterLab 4 draws only the cells near the viewport ("windowing"); the test looks for
    the widget anywhere, so it asks for every cell to be drawn (a setting of the test's own
    home, through the settings API)."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{jupyterlab.port}/lab/api/settings/"
        "@jupyterlab/notebook-extension:tracker", method="PUT",
        data=json.dumps({"raw": json.dumps({"windowingMode": "none"})}).encode(),
        headers={"Authorization": f"token {jupyterlab.token}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 204


def test_lesson_02_runs_in_a_real_browser(jupyterlab: RunningLab, tmp_path):
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    lesson = jupyterlab.notebooks / LESSON
    render_every_cell(jupyterlab)
    screenshot = tmp_path / "lesson02.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                    headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"http://127.0.0.1:{jupyterlab.port}/lab/tree/{LESSON}"
                      f"?token={jupyterlab.token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
            wait_for_kernel(page, "idle", 120)  # Run All before the kernel is up would be lost
            # The recorded outputs go first, so that all that is seen next is this run's.
            menu(page, "Edit", "Clear Outputs of All Cells")
            cleared = save(page, lesson)
            assert all(not c.get("outputs") for c in code_cells(cleared))
            menu(page, "Run", "Run All Cells")
            wait_until_done(page, RUN_ALL_TIMEOUT)
            ran = save(page, lesson)
            slider = page.locator(".jupyter-widgets.widget-slider").first
            slider.scroll_into_view_if_needed(timeout=30_000)
            page.screenshot(path=str(screenshot))
            widget_visible = slider.is_visible()
            tracebacks = page.locator(".jp-OutputArea-output[data-mime-type="
                                      "'application/vnd.jupyter.stderr'] >> "
                                      "text=Traceback").count()
        except Exception:
            page.screenshot(path=str(tmp_path / "failed.png"))  # what the browser showed
            raise
        finally:
            browser.close()
    assert errors(ran) == [] and tracebacks == 0
    not_run = [i for i, c in enumerate(code_cells(ran)) if c.get("execution_count") is None]
    assert not_run == [], f"code cells that did not run: {not_run}"
    assert any("image/png" in out.get("data", {}) for c in code_cells(ran)
               for out in c.get("outputs", [])), "no plot"
    assert widget_visible, "the memory-limit slider did not render"
    assert screenshot.stat().st_size > 10_000  # a page, not a blank
