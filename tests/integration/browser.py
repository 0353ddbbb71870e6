"""browser: Debian's chromium, headless, driven through its DevTools protocol
(CDP) over a WebSocket (Debian's python3-websocket), for tests of pages the
broker serves. No other dependency; run under /usr/bin/python3.

    b = browser.Browser(h)            # one browser per test: h.spawn()s it
    b.goto("http://127.0.0.1:8470/admin")
    b.wait_js("location.pathname === '/admin/login'", 10, "the login form")
    b.type_into("#token", token); b.click("button[type=submit]")
    b.text("#notice")
    b.dialogs, b.requests, b.csp_violations   # what the page did

One browser process for a whole test (its start costs a second or two), a
temporary profile inside the deployment's directory, one page (tab). Clicks
and typing are real input events (Input.dispatchMouseEvent, insertText) at
the element's place on the page, not element.click(). A JavaScript dialog
(alert, confirm, prompt) is recorded in `dialogs` and dismissed, so a
script that should never run is seen, and cannot block the test; every
request the page sends is recorded in `requests` (URL), every console or log
entry about the Content-Security-Policy in `csp_violations`.

--no-sandbox is passed only when running as root, where Chromium refuses to
start without it (CI containers); a normal user keeps the sandbox."""

import json
import os
import shutil
import time

import harness
from harness import TestFailure

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, h, timeout=20):
        import websocket            # Debian's python3-websocket (scripts/deps.sh)
        self._websocket = websocket
        path = chromium_path()
        if not path:
            raise TestFailure("chromium is not installed (Debian's chromium package; scripts/deps.sh)")
        self.profile = os.path.join(h.tmp, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        argv = [path, "--headless=new", "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
                "--disable-features=Translate,MediaRouter,OptimizationHints", "--disable-gpu", "--mute-audio",
                "--password-store=basic", "--use-mock-keychain", "about:blank"]
        if os.geteuid() == 0:
            argv.insert(2, "--no-sandbox")      # Chromium will not run as root with its sandbox
        started = time.monotonic()
        self.proc = h.spawn("chromium", argv)
        port_file = os.path.join(self.profile, "DevToolsActivePort")

        def ready():
            if not self.proc.alive():
                raise TestFailure("chromium exited with %s while starting:\n%s"
                                  % (self.proc.popen.returncode, harness.tail(self.proc.log)))
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                return (int(lines[0]), lines[1]) if len(lines) >= 2 and lines[1] else None
            except (OSError, ValueError):
                return None
        port, ws_path = harness.wait_until(ready, timeout, "chromium to write DevToolsActivePort")
        self.ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (port, ws_path), timeout=timeout,
                                              suppress_origin=True)
        self.startup_seconds = time.monotonic() - started
        self.next_id = 0
        self.dialogs = []               # messages of JavaScript dialogs that opened
        self.requests = []              # URLs of every request the page sent
        self.csp_violations = []        # console / log texts about the Content-Security-Policy
        self.session = None
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(domain + ".enable")

    # -- protocol

    def _event(self, msg):
        method = msg.get("method")
        params = msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message"))
            self._post("Page.handleJavaScriptDialog", {"accept": False})
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url"))
        elif method == "Log.entryAdded":
            text = params.get("entry", {}).get("text", "")
            if "Content Security Policy" in text or "Content-Security-Policy" in text:
                self.csp_violations.append(text)
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            if "Content Security Policy" in text:
                self.csp_violations.append(text)

    def _post(self, method, params=None):
        """Sends a command without waiting for its answer; returns its id."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def send(self, method, params=None, timeout=20):
        """Sends a command and returns its result, handling events meanwhile."""
        wanted = self._post(method, params)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("DevTools: no answer to %s within %ss" % (method, timeout))
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except self._websocket.WebSocketTimeoutException:
                continue
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise TestFailure("DevTools: %s failed: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def pump(self, seconds):
        """Handles events for up to seconds (nothing is sent)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except self._websocket.WebSocketTimeoutException:
                return
            if "method" in msg:
                self._event(msg)

    # -- the page

    def js(self, expression):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise TestFailure("JavaScript error in %r: %s" % (expression[:200], result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    def wait_js(self, expression, timeout, what):
        """Waits until the expression is truthy in a loaded page; returns its value."""
        def ready():
            try:
                return self.js("document.readyState === 'complete' && (%s)" % expression)
            except TestFailure:
                return None         # the page is changing (navigation)
        return harness.wait_until(ready, timeout, lambda: "%s (page %s)" % (what, self.location()),
                                  interval=0.05)

    def location(self):
        try:
            return self.js("location.pathname + location.search")
        except TestFailure as e:
            return "? (%s)" % e

    def goto(self, url, timeout=15):
        self.send("Page.navigate", {"url": url})
        self.wait_js("location.href !== 'about:blank'", timeout, "the page %s to load" % url)

    def text(self, selector):
        """textContent of the first element matching selector, or None."""
        return self.js("(function () { var e = document.querySelector(%s); return e ? e.textContent : null; })()"
                       % json.dumps(selector))

    def count(self, selector):
        return self.js("document.querySelectorAll(%s).length" % json.dumps(selector))

    def click(self, selector):
        """A real left click in the middle of the element (scrolled into view)."""
        point = self.js("(function () { var e = document.querySelector(%s); if (!e) return null;"
                        " e.scrollIntoView({block: 'center'}); var r = e.getBoundingClientRect();"
                        " return [r.left + r.width / 2, r.top + r.height / 2]; })()" % json.dumps(selector))
        if not point:
            raise TestFailure("nothing to click: no %s on %s" % (selector, self.location()))
        x, y = point
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1})

    def type_into(self, selector, text):
        """Clicks the field and types text into it."""
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def cookies(self):
        return self.send("Network.getCookies").get("cookies", [])

    def close(self):
        """Closes the browser (a Browser domain command: to the browser, not the page)."""
        self.session = None
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.ws.close()
        except Exception:
            pass
