"""Open an HTML file in headless Chromium and report console errors and rendered plotly figures.

Speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4,
NUL-separated JSON), so it needs only the Debian ``chromium`` package and the standard library:
no selenium, no chromedriver, no websocket client, no TCP port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Figures count as rendered when plotly drew its SVG and at least one trace into the div.
COUNT_JS = """JSON.stringify((() => {
  const divs = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const drawn = divs.filter(d => d.querySelector('svg.main-svg') &&
                                 d.querySelectorAll('.scatterlayer .trace').length > 0);
  const ids = Array.from(document.querySelectorAll('[id]')).filter(e => !e.closest('svg'))
                   .map(e => e.id);  // ids of the page, not of plotly's own SVG symbols
  const dups = ids.filter((id, i) => ids.indexOf(id) !== i);
  return {plots: divs.length, rendered: drawn.length, ids: drawn.map(d => d.tagName + '#' + d.id),
          dups: dups};
})())"""


@dataclass
class PageCheck:
    plots: int
    rendered: int
    rendered_ids: list[str]  # TAG#id of each rendered figure
    duplicate_ids: list[str]  # element ids used twice (plotly would draw into the first one)
    errors: list[str] = field(default_factory=list)


def chromium_binary() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.w, self.r = proc, write_fd, read_fd
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def wait(self, pred, deadline: float) -> dict:
        while time.monotonic() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                msg = json.loads(raw)
                self.events.append(msg)
                if pred(msg):
                    return msg
            ready, _, _ = select.select([self.r], [], [], 0.5)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
        raise TimeoutError("chromium did not answer in time")

    def call(self, method: str, params: dict | None, session: str | None, deadline: float) -> dict:
        i = self.send(method, params, session)
        reply = self.wait(lambda m: m.get("id") == i, deadline)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(
                "console."
                + p["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            )
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log: {p['entry'].get('text')}")
    return out


def check_page(html: Path, timeout: float = 90.0, settle_s: float = 1.0) -> PageCheck:
    """Load ``html`` from disk, wait for its load event (+ ``settle_s``), count the figures."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium not found (scripts/setup_system.sh installs it)")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # move the child's ends above fd 10 so dup2 onto 3/4 in the child never clobbers them
    child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(to_chrome_r)
    os.close(from_chrome_w)

    def child_fds() -> None:
        os.dup2(child_r, 3)  # dup2 clears close-on-exec on the new descriptors
        os.dup2(child_w, 4)

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--remote-debugging-pipe",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    proc = subprocess.Popen(
        args,
        preexec_fn=child_fds,
        close_fds=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(child_r)
    os.close(child_w)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    deadline = time.monotonic() + timeout
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"}, None, deadline)
        sid = pipe.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            None,
            deadline,
        )["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            pipe.call(method, None, sid, deadline)
        pipe.send("Page.navigate", {"url": html.resolve().as_uri()}, sid)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired", deadline)
        time.sleep(settle_s)
        res = pipe.call(
            "Runtime.evaluate", {"expression": COUNT_JS, "returnByValue": True}, sid, deadline
        )
        counts = json.loads(res["result"]["value"])
        with_errors = _errors(pipe.events)
        with contextlib.suppress(OSError):
            pipe.send("Browser.close")
        return PageCheck(
            counts["plots"], counts["rendered"], counts["ids"], counts["dups"], with_errors
        )
    finally:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        shutil.rmtree(profile, ignore_errors=True)
