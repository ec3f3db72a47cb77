"""Driving Debian's Chromium with Playwright for the browser tests, offline.

Playwright's own browser download does not work everywhere (and CI has no need
of it): the tests use the Chromium that ``apt-get install chromium`` puts in
/usr/bin. Where it is missing the tests fail and say how to install it; only
``COURSE_ALLOW_NO_BROWSER=1`` (never set in CI) turns that into a skip.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ENV = "COURSE_CHROMIUM"
ALLOW_ENV = "COURSE_ALLOW_NO_BROWSER"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_PREFIXES = ("file:", "data:", "blob:", "about:")
INSTALLED_AT = ("/usr/bin/chromium",)  # where Debian's package puts it


def chromium() -> str:
    """The Chromium binary; fails the test (or skips, with COURSE_ALLOW_NO_BROWSER=1) when there is none."""
    candidates = [os.environ.get(CHROMIUM_ENV), shutil.which("chromium"), *INSTALLED_AT,
                  shutil.which("chromium-browser")]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    message = ("Chromium is not installed, and the browser tests need it: run `sudo apt-get install -y chromium` "
               f"(or set {CHROMIUM_ENV}=/path/to/chromium). Set {ALLOW_ENV}=1 to skip these tests on a machine "
               "without a browser; CI never does.")
    if os.environ.get(ALLOW_ENV) == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def launch(playwright):
    """Chromium, headless, with no background traffic of its own."""
    return playwright.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS, headless=True)


@dataclass
class Traffic:
    """What a page asked for: every request, those that failed, those that tried to leave the machine."""

    allowed: tuple[str, ...] = LOCAL_PREFIXES
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        return url.startswith(self.allowed)

    def route(self, route) -> None:
        url = route.request.url
        if self.is_local(url):
            route.continue_()
        else:  # never let it out: record it and abort
            self.outside.append(url)
            route.abort()

    def watch(self, context) -> None:
        """Route and record everything ``context`` (and the pages it opens) requests."""
        context.route("**/*", self.route)
        context.on("page", self.watch_page)
        context.on("weberror", lambda err: self.errors.append(f"page error: {err.error}"))

    def watch_page(self, page) -> None:
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("requestfailed", self._failed)
        page.on("response", lambda res: res.status >= 400 and self.failed.append(f"{res.url}: HTTP {res.status}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console: {msg.text} @ {msg.location.get('url', '')}"))

    def _failed(self, request) -> None:
        if request.url not in self.outside:  # those we aborted ourselves are reported as `outside`
            self.failed.append(f"{request.url}: {request.failure}")


def artifact(name: str) -> Path:
    """A path in test-artifacts/ (kept after the run: screenshots, logs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
