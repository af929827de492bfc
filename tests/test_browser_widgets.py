"""Notebook 03's scaling explorer in a real browser: JupyterLab + headless Chromium.

The test starts JupyterLab on a free localhost port (kernel = this Python), opens
`notebooks/03_compound_scaling.ipynb` in Debian's Chromium driven by Playwright, runs all
cells from the Run menu, moves the φ slider with the keyboard and checks that the displayed
parameter count becomes that of a model really built with width β^φ and depth α^φ.

It skips (with the reason) when Chromium or the `playwright` package is missing: `.ci/run`
installs Debian's `chromium`; Playwright never downloads a browser here. Set
EFFNET_CHROMIUM=/path/to/chromium to use another binary, and EFFNET_SCREENSHOT=1 to refresh
`docs/scaling_explorer.png` (the README's picture) from the run; otherwise the screenshot
goes to pytest's temporary directory only.

Nothing leaves the machine: Chromium runs with background networking off and every request
not addressed to the local server is aborted. JupyterLab gets throw-away config, data and
runtime directories with autosave off, so the committed notebook is never rewritten (checked
at teardown), and it is always shut down, its kernel included.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import scaled_b0_params

from effnet_lab.paper.scaling import RELEASED, compound_multipliers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/03_compound_scaling.ipynb"
SCREENSHOT = ROOT / "docs" / "scaling_explorer.png"
WAIT_S = 120  # the longest any single wait may take
PHI_STEP = 0.1  # one key press on the φ slider (widgets.py: range −2 … 8, step 0.1)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
# JupyterLab user settings for the run: no autosave (the notebook stays as committed), no
# news feed (no request to the internet, no pop-up over the notebook), every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

# The status bar says "Python 3 (ipykernel) | Idle" once the page is connected to an idle
# kernel ("No Kernel | Initializing", "… | Connecting", "… | Busy" before); the toolbar's
# execution indicator alone reads "idle" even before the kernel exists.
KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(
    e => /\\| Idle$/.test(e.textContent.trim()) && !e.textContent.startsWith('No Kernel'))
    && !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')"""


# ------------------------------------------------------------------------------ what it needs
def find_chromium() -> str | None:
    """EFFNET_CHROMIUM if set, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    chosen = os.environ.get("EFFNET_CHROMIUM")
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        where = os.environ.get("EFFNET_CHROMIUM") or "/usr/bin/chromium or `chromium` on PATH"
        pytest.skip(f"no Chromium ({where} not found): `apt-get install chromium` (.ci/run does) to run this test")
    pytest.importorskip("playwright.sync_api", reason="the `playwright` package is missing: pip install playwright")
    pytest.importorskip("jupyterlab", reason="JupyterLab is missing (the `lab` extra)")
    return path


# ------------------------------------------------------------------------------ JupyterLab
@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; elsewhere none). The kernel runs in its own
    process group, so killing the server's group alone would not reach it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _api(lab: Lab, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{lab.url}{path}", method=method,
                                     headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def _stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut the kernels down through the API, stop the server (SIGTERM, then SIGKILL to its
    process group) and kill anything it left behind."""
    family = _descendants(process.pid)
    if process.poll() is None:
        try:
            for kernel in _api(lab, "/api/kernels"):
                _api(lab, f"/api/kernels/{kernel['id']}", method="DELETE")
        except (OSError, ValueError):
            pass
        family = _descendants(process.pid)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # already gone
            pass


@pytest.fixture(scope="module")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("jupyter")
    for plugin, values in LAB_SETTINGS.items():
        target = home / "settings" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    # the notebook's kernel "python3" = this interpreter (the user data dir is searched first)
    spec = home / "data" / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                "display_name": "Python 3 (ipykernel)", "language": "python"}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.pop("JUPYTER_PATH", None)
    port, token = _free_port(), hashlib.sha256(os.urandom(16)).hexdigest()[:32]
    lab = Lab(f"http://127.0.0.1:{port}", token, home / "jupyterlab.log")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    notebook_before = (ROOT / NOTEBOOK).read_bytes()
    with open(lab.log, "wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{lab.log.read_text()[-3000:]}")
            try:
                _api(lab, "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {WAIT_S} s:\n{lab.log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield lab
    finally:
        _stop(process, lab)
    assert (ROOT / NOTEBOOK).read_bytes() == notebook_before, f"{NOTEBOOK} was modified by the browser session"


# ------------------------------------------------------------------------------ the browser
def _local_only(lab: Lab, blocked: list[str]) -> Callable[[Any], None]:
    """A Playwright route handler: requests to the lab server pass, all others are aborted."""
    netloc = urlparse(lab.url).netloc

    def handle(route: Any) -> None:
        url = route.request.url
        if urlparse(url).scheme in ("data", "blob") or urlparse(url).netloc == netloc:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    return handle


def _wait_until_stable(read: Callable[[], str], quiet_s: float = 1.5) -> str:
    """Poll `read()` until it has not changed for `quiet_s` seconds (one move may bring a
    few updates from the kernel)."""
    deadline = time.monotonic() + WAIT_S
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError(f"value still changing after {WAIT_S} s (last: {value})")
        time.sleep(0.2)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


@dataclass
class Explorer:
    """The explorer's output in the open notebook, after Run All."""

    page: Any  # playwright Page
    root: Any  # Locator of .effnet-explorer
    shots: Path  # where screenshots go
    timings: dict[str, float]

    def params(self) -> str:
        return self.root.locator(".effnet-params .effnet-value").get_attribute("data-value") or ""

    def phi(self) -> str:
        return self.root.locator(".effnet-phi-slider .widget-readout").inner_text().strip()

    def mode(self) -> str:
        return self.root.locator(".effnet-mode-value").get_attribute("data-value") or ""

    def readouts(self) -> tuple[str, str, str]:
        """What the width, depth and resolution sliders display beside them."""
        return tuple(self.root.locator(f".effnet-{n}-slider .widget-readout").inner_text().strip()
                     for n in ("width", "depth", "resolution"))

    def settled(self) -> tuple[str, str, str]:
        """(φ shown, parameter count, mode) once nothing has changed for a moment."""
        _wait_until_stable(lambda: f"{self.phi()} {self.params()} {self.mode()}")
        return self.phi(), self.params(), self.mode()

    @contextmanager
    def screenshot_on_failure(self, name: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            shot = self.shots / f"failure-{name}.png"
            self.page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise


def _open_and_run_all(page: Any, lab: Lab, timings: dict[str, float]) -> None:
    start = time.monotonic()
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", wait_until="domcontentloaded")
    page.wait_for_function(KERNEL_IDLE)  # the kernel has started and the page is connected to it
    timings["open notebook"] = time.monotonic() - start

    # room for the explorer: fold the file browser away
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if current.count():
        current.first.click()

    # clear the saved outputs (and the widget restored from them), then Run ▸ Run All Cells
    page.locator(".lm-MenuBar-item", has_text="Edit").click()
    page.locator('.lm-Menu-item[data-command="editmenu:clear-all"]').click()
    page.wait_for_function("() => !document.querySelector('.effnet-explorer')")
    page.locator(".lm-MenuBar-item", has_text="Run").click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }""")  # every code cell has run: "[n]:", none "[*]:" or "[ ]:"
    page.wait_for_function(KERNEL_IDLE)
    page.locator(".effnet-explorer .effnet-params .effnet-value[data-value]").wait_for()
    timings["run all"] = time.monotonic() - start - timings["open notebook"]


@pytest.fixture(scope="module")
def explorer(lab: Lab, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    """Notebook 03 open in headless Chromium, all cells run, the explorer rendered."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True,
                                     timeout=WAIT_S * 1000)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1000}, device_scale_factor=1)
            context.route("**/*", _local_only(lab, blocked))
            page = context.new_page()
            page.set_default_timeout(WAIT_S * 1000)
            found = Explorer(page, page.locator(".effnet-explorer"), tmp_path_factory.mktemp("browser"), {})
            with found.screenshot_on_failure("run-all"):
                _open_and_run_all(page, lab, found.timings)
                assert found.root.count() == 1
            yield found
        finally:
            browser.close()
    print(f"\ntimings (s): {', '.join(f'{k} {v:.1f}' for k, v in found.timings.items())}; "
          f"requests aborted (not to the local server): {blocked}")


# ------------------------------------------------------------------------------ the tests
def test_after_run_all_the_explorer_shows_b4(explorer: Explorer) -> None:
    """The notebook's last command on the explorer is `explorer.preset.value = "b4"`. (Chromium echoes
    step-rounded earlier values back after that; the explorer must not take them for user moves.)"""
    phi, params, mode = explorer.settled()
    b4 = RELEASED["b4"]
    assert (mode, int(params)) == ("b4", scaled_b0_params(b4.width, b4.depth)), explorer.root.locator(
        ".effnet-mode").inner_text()
    # the sliders read B4's multipliers too (a stale echo of φ = 3's once left them at 1.350 / 1.750)
    _wait_until_stable(explorer.readouts)
    assert explorer.readouts() == (f"{b4.width:.3f}", f"{b4.depth:.3f}", str(b4.resolution))


def test_every_preset_picked_in_the_dropdown_shows_its_multipliers(explorer: Explorer) -> None:
    """Pick each released network by hand: the mode, the parameter count and all three slider
    readouts agree with that network."""
    select = explorer.root.locator(".effnet-preset select")
    with explorer.screenshot_on_failure("presets"):
        for key, m in RELEASED.items():
            select.select_option(label=f"{key.upper()} (released)")
            explorer.page.wait_for_function(
                "key => document.querySelector('.effnet-explorer .effnet-mode-value')?.getAttribute('data-value')"
                " === key", arg=key)
            _, params, mode = explorer.settled()
            _wait_until_stable(explorer.readouts)
            assert (mode, int(params)) == (key, scaled_b0_params(m.width, m.depth))
            assert explorer.readouts() == (f"{m.width:.3f}", f"{m.depth:.3f}", str(m.resolution)), key
        select.select_option(label="B4 (released)")  # leave it as Run All did, for the tests after this one
        explorer.settled()


def test_phi_slider_shows_the_parameter_count_of_the_scaled_model(explorer: Explorer) -> None:
    with explorer.screenshot_on_failure("phi-slider"):
        phi_before, params_before, _ = explorer.settled()

        # one step right with the keyboard, as a user would
        moved = time.monotonic()
        handle = explorer.root.locator(".effnet-phi-slider .noUi-handle")
        handle.focus()
        handle.press("ArrowRight")
        # (the HTML widget re-renders its content on every change: look the span up each time)
        explorer.page.wait_for_function(
            "before => document.querySelector('.effnet-explorer .effnet-params .effnet-value')"
            "?.getAttribute('data-value') !== before", arg=params_before)
        phi_after, params_after, mode_after = explorer.settled()
        explorer.timings["φ key → new count"] = time.monotonic() - moved

        m = compound_multipliers(float(phi_after))  # width β^φ, depth α^φ, as the explorer defines them
        expected = scaled_b0_params(m.width, m.depth)
        print(f"\nφ {phi_before} → {phi_after}: shown {int(params_before):,} → {int(params_after):,} parameters; "
              f"B0 built with width β^φ = {m.width:.4f}, depth α^φ = {m.depth:.4f}: {expected:,}")
        assert float(phi_after) == pytest.approx(float(phi_before) + PHI_STEP)
        assert mode_after == "phi"  # moving φ (re-)attaches the network to the pure rule
        assert int(params_after) != int(params_before)
        assert int(params_after) == expected
        assert explorer.root.locator(".effnet-params .effnet-value").inner_text().strip() == f"{expected:,}"

        shot = explorer.shots / "scaling_explorer.png"
        # the explorer alone, with a small white margin for the README (a style for the picture only)
        explorer.root.evaluate("e => Object.assign(e.style, {padding: '10px', boxSizing: 'border-box'})")
        explorer.root.screenshot(path=str(shot))
        if os.environ.get("EFFNET_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
            print(f"screenshot saved to {SCREENSHOT}")
