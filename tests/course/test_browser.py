"""A real browser: JupyterLab, started by ``minidocker lab``, opens lesson 02 in headless
Chromium (Debian's, driven by Playwright), runs all its cells, and shows no error, with its
widget (the memory-limit slider) rendered and a screenshot kept in the test's directory. And
lessons 03, 04 and 06 as shipped, run by nobody: their widgets are drawn from the state saved in
the notebook, as a learner sees them on opening a lesson, not as the text ``VBox(...)``.

Lesson 02 is the one with a widget and plots. Run as root, its cells are live: they start
containers in the lesson's own state root, under the test's temporary directory, and its last
cell cleans them up. Playwright never downloads a browser here: it launches /usr/bin/chromium,
or the Chromium that MINIDOCKER_TEST_CHROMIUM names (on Ubuntu, whose chromium is only a snap,
the one ``.venv/bin/playwright install --with-deps chromium`` downloads where Playwright's CDN
is reachable).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import needs_root
from tests.course.conftest import RunningLab, on_ubuntu

CHROMIUM = os.environ.get("MINIDOCKER_TEST_CHROMIUM", "/usr/bin/chromium")
NO_CHROMIUM = (f"no Chromium at {CHROMIUM}: Ubuntu 24.04 ships Chromium only as a snap (its "
               "chromium deb is a transitional package that installs snapd and the snap), so "
               "setup.sh leaves it out; run this test on Debian 12, or set "
               "MINIDOCKER_TEST_CHROMIUM to a Chromium binary (`.venv/bin/playwright install "
               "--with-deps chromium` fetches one from Playwright's CDN)" if on_ubuntu()
               else "needs Debian's chromium: SETUP_TEST_TOOLS=1 bash scripts/setup.sh "
                    "installs it, as scripts/test.sh does")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
LESSON = "02_cgroups.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RUN_ALL_TIMEOUT = 600  # seconds; lesson 02 live takes well under a minute on the CI host

pytestmark = [pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=NO_CHROMIUM)]
# Each lesson shipped with a widget, and the class its widget draws (ipywidgets' own CSS).
SHIPPED_WIDGETS = {"03_capabilities.ipynb": ".widget-select-multiple",
                   "04_overlayfs.ipynb": ".widget-dropdown",
                   "06_networking.ipynb": ".widget-button"}
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="needs playwright (the test extra: setup.sh)")


def settle_kernel(page, timeout: float = 120, quiet: float = 3) -> None:
    """Wait until the notebook's kernel is idle and stays so, with no dialog open.

    On a loaded machine, jupyter_server sometimes fails the first websocket to a kernel that
    is still starting (``'NoneType' object has no attribute 'kernel_ws_protocol'``, its
    issue 1265), and JupyterLab then asks which kernel to use. The test answers as a learner
    would: Select (the notebook's own kernel), which connects again."""
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            assert "Select Kernel" in dialog.inner_text(), dialog.inner_text()
            page.click(".jp-Dialog .jp-mod-accept")
            idle_since = None
        elif page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status") == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return
        else:
            idle_since = None
        time.sleep(0.3)
    raise AssertionError(f"the kernel was not ready within {timeout}s")


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


def menu(page, top: str, item: str, tries: int = 40) -> None:
    """Click ``top`` > ``item`` in JupyterLab's menu bar, once the item is enabled: Lumino
    enables a notebook's items only when the notebook is the current widget, which can trail
    the page's load by a moment."""
    enabled = f".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel:text-is('{item}')"
    for _ in range(tries):
        page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
        if page.locator(enabled).count():
            page.click(enabled)
            return
        page.keyboard.press("Escape")
        time.sleep(0.5)
    raise AssertionError(f"{top} > {item} stayed disabled")


def save(page, path: Path, until, timeout: float = 30) -> dict:
    """Save the notebook from the browser (File > Save Notebook) and read it back once what
    was written satisfies ``until`` (JupyterLab also saves by itself, e.g. when the kernel
    starts, so a new mtime alone proves nothing)."""
    menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + timeout
    while True:
        try:
            nb = json.loads(path.read_text())
            if until(nb):
                return nb
        except ValueError:  # caught mid-write
            nb = {}
        if time.monotonic() > deadline:
            raise AssertionError("File > Save Notebook did not write what the page shows")
        time.sleep(0.3)


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def errors(nb: dict) -> list[str]:
    return [f"cell {i}: {out['ename']}: {out['evalue'][:200]}"
            for i, cell in enumerate(code_cells(nb))
            for out in cell.get("outputs", []) if out["output_type"] == "error"]


def strip_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    for cell in code_cells(nb):
        cell["outputs"], cell["execution_count"] = [], None
    path.write_text(json.dumps(nb))


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


@needs_root  # lesson 02's widget is shown only when its cells run live
@pytest.mark.kernel
def test_lesson_02_runs_in_a_real_browser(jupyterlab: RunningLab, tmp_path):
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    lesson = jupyterlab.notebooks / LESSON
    strip_outputs(lesson)  # so that every output seen, plot and widget, is this run's
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
            settle_kernel(page)  # Run All before the kernel is up would be lost
            menu(page, "Run", "Run All Cells")
            wait_until_done(page, RUN_ALL_TIMEOUT)
            ran = save(page, lesson, until=lambda nb: any(c.get("outputs")
                                                          for c in code_cells(nb)))
            assert errors(ran) == []
            not_run = [i for i, c in enumerate(code_cells(ran))
                       if c.get("execution_count") is None]
            assert not_run == [], f"code cells that did not run: {not_run}"
            assert any(WIDGET_VIEW in out.get("data", {}) for c in code_cells(ran)
                       for out in c.get("outputs", [])), "no cell displayed a widget"
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
    assert tracebacks == 0
    assert any("image/png" in out.get("data", {}) for c in code_cells(ran)
               for out in c.get("outputs", [])), "no plot"
    assert widget_visible, "the memory-limit slider did not render"
    assert screenshot.stat().st_size > 10_000  # a page, not a blank


def test_shipped_lessons_draw_their_saved_widgets(jupyterlab: RunningLab, tmp_path):
    """Opened, not run: no cell executes (their prompts stay as saved), so every widget on
    the page comes from the notebook's saved ``metadata.widgets``."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    render_every_cell(jupyterlab)
    seen = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                    headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for lesson, drawn in SHIPPED_WIDGETS.items():
                saved = json.loads((jupyterlab.notebooks / lesson).read_text())
                prompts = [c.get("execution_count") for c in code_cells(saved)]
                # a workspace of its own: only this lesson open, so every cell on the page is its
                page.goto(f"http://127.0.0.1:{jupyterlab.port}/lab/workspaces/"
                          f"{lesson.split('_')[0]}/tree/{lesson}?token={jupyterlab.token}",
                          timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
                widget = page.locator(f".jp-OutputArea-output .jupyter-widgets{drawn}").first
                try:
                    widget.wait_for(state="attached", timeout=60_000)
                    widget.scroll_into_view_if_needed(timeout=30_000)
                    visible = widget.is_visible()
                except playwright.Error:
                    visible = False
                fallback = page.locator(".jp-OutputArea-output:not(:has(.jupyter-widgets))",
                                        has_text="children=(").count()
                page.screenshot(path=str(tmp_path / lesson.replace(".ipynb", ".png")))
                after = json.loads((jupyterlab.notebooks / lesson).read_text())
                seen[lesson] = (visible, fallback,
                                [c.get("execution_count") for c in code_cells(after)] == prompts)
        finally:
            browser.close()
    assert seen == {lesson: (True, 0, True) for lesson in SHIPPED_WIDGETS}, \
        f"(widget drawn, text fallbacks shown, nothing ran): {seen}; screenshots in {tmp_path}"
