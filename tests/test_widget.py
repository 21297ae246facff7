"""The in-app widget (docs/in-app.md, "The widget" and "The demo page") in Debian's Chromium,
against a live `upsell serve` on a copy of the demo company.

One server and one browser serve the whole file; each test opens its own browser context. The
in-app messages are queued in the store as `upsell run` queues them, one account per test that
answers its message (a dismissed or clicked message is never served again, a modal is served
once). Screenshots of each placement go to test-results/widget/ (gitignored).

The customer's web app is a page of another origin (another port of 127.0.0.1, served by a small
HTTP server of the test's own): a host page with hostile CSS that embeds the widget from the
upsell server, as a company's web app does. (A page Playwright made up would be a public origin,
which Chromium does not let reach a loopback server.)
"""

from __future__ import annotations

import gzip
import html
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from live_server import LiveServer, child_env, free_port, live_server
from upsell.config.workspace import load_config, parse_config
from upsell.domain.accounts import User
from upsell.domain.calendar import iso
from upsell.domain.checkout import verify
from upsell.domain.contacts import Contact
from upsell.errors import ConfigError
from upsell.store.accounts import upsert_users
from upsell.store.contacts import record_contact
from upsell.store.db import connect, sqlite_url
from upsell.store.secrets import signing_secret

ROOT = Path(__file__).parent.parent
WIDGET = ROOT / "src" / "upsell" / "service" / "static" / "widget.js"
SCREENSHOTS = ROOT / "test-results" / "widget"
CHROMIUM = Path("/usr/bin/chromium")
#: The demo company's checkout (the built-in playbooks' checkout_url), served by Playwright.
CHECKOUT = "https://app.example.com/billing/checkout"
#: The call to action of every queued message: the server's accept link for its offer.
ACCEPT = "/v1/offers/upsell%3Abasic-%3Epro/accept?token="
#: The size the widget must stay under, gzipped (issue 14).
MAX_GZIPPED = 8 * 1024
#: How the browser itself logs a request that failed (refused, a 500): no script can keep these
#: lines off the console, and they are not errors of the page's scripts.
NETWORK_LINE = "Failed to load resource: "

HOSTILE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="icon" href="data:,"><title>Hostile host</title>
<style>
  *, *::before, *::after { all: unset !important; }
  head, style, script { display: none !important; }
  html, body, div, p, main, header { display: block !important; }
  body { font: 40px/3 serif !important; color: rgb(255, 0, 0) !important; }
  * { z-index: 2147483647 !important; box-sizing: content-box !important; }
  upsell-message, [style] { display: none !important; position: static !important;
                            opacity: 0 !important; transform: scale(0) !important; }
  .wall { position: fixed !important; inset: 0 !important; background: rgba(0, 128, 0, .2) !important; }
  .cta { color: rgb(1, 2, 3) !important; }
</style>
<script>window.upsell=window.upsell||function(){(upsell.q=upsell.q||[]).push(arguments)};</script>
<script src="SERVER/widget.js" data-key="KEY" data-poll-seconds="POLL" async></script>
</head>
<body>
<header><button id="before">Before</button> <span id="seats">Seats 10/10</span></header>
<main><p class="cta">The host page's own .cta</p><p>Text</p></main>
<div class="wall"></div>
</body></html>
"""


@dataclass
class Site:
    server: LiveServer
    folder: Path
    db: sa.Engine
    key: str
    accounts: list[tuple[str, str]]  # (account, user) with a message queued, by test
    customer: str  # the origin of the customer's web app (the hostile host page)
    messages: dict[str, str] = field(default_factory=dict)  # account -> message id

    @property
    def url(self) -> str:
        return self.server.url

    def up(self) -> Site:
        """The site, its server started again if a test stopped it."""
        if self.server.process is None:
            self.server.start()
        return self

    def queue(
        self,
        account: str,
        placement: str,
        *,
        title: str = "Your team has outgrown Basic",
        anchor: str | None = None,
        days_ago: float = 0,
    ) -> str:
        """An in-app contact for `account`, as `upsell run` records one; its message id."""
        at = datetime.now(UTC) - timedelta(days=days_ago, seconds=1)
        message = {
            "locale": "en_US",
            "subject": title,
            "body": "You use 10 of your 10 seats.\nPro gives you 25 seats and SSO.",
            "cta": "Try Pro free for 14 days",
            "cta_url": f"{CHECKOUT}?account={account}&item=pro",
            "expires_at": iso(at + timedelta(days=14)),
        }
        decision = {"expected_mrr_delta": "30.00", "currency": "USD", "price": "49.00",
                    "price_currency": "USD", "trial_days": 14, "anchor": anchor,
                    "reasons": [{"text": "10 of 10 seats used"}]}  # fmt: skip
        contact = Contact(
            account_id=account, as_of=at, kind="upsell", offer_id="upsell:basic->pro",
            item_id="pro", channel="in_app", placement=placement, message=message,
            decision=decision,
        )  # fmt: skip
        with self.writing() as conn:
            contact_id, _ = record_contact(conn=conn, contact=contact)
        self.messages[account] = str(contact_id)
        return str(contact_id)

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A transaction that takes SQLite's write lock up front: the server writes too."""
        with self.db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn

    def answered(self, message_id: str, event: str, timeout: float = 10) -> datetime | None:
        """The time `event` was recorded on the message, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.connect() as conn:
                at: datetime | None = conn.exec_driver_sql(
                    f"SELECT {event}_at FROM contacts WHERE contact_id = ?", (int(message_id),)
                ).scalar_one()
            if at is not None or time.monotonic() > deadline:
                return at
            time.sleep(0.05)


def _chromium_or_skip() -> Any:
    required = bool(os.environ.get("UPSELL_REQUIRE_CHROMIUM"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - dev extras always have it
        if required:
            pytest.fail("UPSELL_REQUIRE_CHROMIUM is set but the playwright package is missing")
        pytest.skip("the playwright package is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"UPSELL_REQUIRE_CHROMIUM is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (as .ci/run does)")
    return sync_playwright


def _customer_app(port: int, html: str) -> ThreadingHTTPServer:
    """The customer's web app on 127.0.0.1:`port`: `html` at every path (``?poll=N`` sets the
    widget's data-poll-seconds), in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            poll = self.path.partition("poll=")[2] or "10"
            body = html.replace("POLL", poll).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    app = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    return app


@pytest.fixture(scope="module")
def site(demo_company: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`upsell serve` on a copy of the demo company (its config.yaml has the demo page on), with
    the customer's web app among the widget's origins, a publishable key, and users to queue
    messages for."""
    folder = Path(shutil.copytree(demo_company, tmp_path_factory.mktemp("widget") / "ws"))
    port = free_port()
    customer = f"http://127.0.0.1:{port}"
    (folder / "config.yaml").write_text(
        f'in_app:\n  demo_page: true\n  origins: ["{customer}"]\n  poll_seconds: 10\n'
    )
    db = connect(sqlite_url(folder))
    try:
        from upsell.store.keys import create_key

        with db.begin() as conn:
            _, key = create_key(conn=conn, kind="publishable", name="widget test")
            accounts = [
                (a, u)
                for a, u in conn.exec_driver_sql(
                    "SELECT account_id, MIN(user_id) FROM users GROUP BY account_id "
                    "ORDER BY account_id LIMIT 40"
                )
            ]
        # The tests queue offers from this process and open the page at once: the server looks
        # for them at every request (tests/test_in_app.py checks the default refresh).
        env = child_env(None) | {"UPSELL_SERVICE_MESSAGES_REFRESH_SECONDS": "0"}
        with live_server(folder, env) as server:
            app = _customer_app(port, HOSTILE.replace("SERVER", server.url).replace("KEY", key))
            try:
                yield Site(server, folder, db, key, accounts, customer)
            finally:
                app.shutdown()
                app.server_close()
    finally:
        db.dispose()


@dataclass
class Browser:
    browser: Any
    shots: Path

    def page(self, site: Site, **context: Any) -> Page:
        ctx = self.browser.new_context(**{"viewport": {"width": 1000, "height": 700}, **context})
        ctx.set_default_timeout(10_000)
        page = ctx.new_page()
        watched = Page(page)
        page.on("console", lambda m: watched.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: watched.console.append(f"pageerror: {e}"))

        # Playwright routes no request of a redirect chain, so the accept link is fetched by
        # Playwright (the server records the click and answers 303) and its redirect handed to
        # the browser as a page that goes on to the checkout, a page made up here.
        def accept(route: Any) -> None:
            answer = route.fetch(max_redirects=0)
            assert answer.status == 303, answer.status
            to = html.escape(answer.headers["location"])
            route.fulfill(
                content_type="text/html", body=f'<meta http-equiv="refresh" content="0;url={to}">'
            )

        page.route("**/v1/offers/*/accept?*", accept)
        page.route(
            "https://app.example.com/**",
            lambda r: r.fulfill(content_type="text/html", body="<title>Checkout</title>checkout"),
        )
        return watched


@dataclass
class Page:
    """A Playwright page and the console errors and page errors it had."""

    page: Any
    console: list[str] = field(default_factory=list)

    def card(self, placement: str) -> Any:
        """The locator of the message card of `placement` (Playwright pierces open shadow roots)."""
        return self.page.locator(f"upsell-message[data-placement={placement}] .card")

    def settled(self, placement: str) -> Any:
        """The card of `placement`, visible and done with its entrance animation."""
        card = self.card(placement)
        card.wait_for(state="visible")
        card.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
        return card

    def eval(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def focused(self) -> str:
        """The class of the element focused inside the widget, or the id of the page's."""
        return str(
            self.eval(
                """() => { const a = document.activeElement;
                   return a.shadowRoot ? 'upsell:' + a.shadowRoot.activeElement?.className
                                       : a.id || a.tagName; }"""
            )
        )

    def close(self) -> None:
        self.page.context.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    sync_playwright = _chromium_or_skip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield Browser(browser, SCREENSHOTS)
        finally:
            browser.close()


@pytest.fixture
def open_page(site: Site, chromium: Browser) -> Iterator[Callable[..., Page]]:
    """Open pages in new browser contexts; each is closed, with no console error, at the end."""
    site.up()
    opened: list[Page] = []

    def make(**context: Any) -> Page:
        page = chromium.page(site, **context)
        opened.append(page)
        return page

    yield make
    for page in opened:
        page.close()
    errors = [e for page in opened for e in page.console]
    assert errors == [], errors


def customer(site: Site, index: int) -> tuple[str, str]:
    """The (account, user) of a test's own account."""
    return site.accounts[index]


def identify(page: Page, user: str, account: str | None = None) -> None:
    page.eval("([u, a]) => upsell('identify', {userId: u, accountId: a})", [user, account])


# -- the script ---------------------------------------------------------------------------------


def test_widget_js_is_small_cached_and_compressed(site: Site) -> None:
    site.up()
    size = len(gzip.compress(WIDGET.read_bytes(), compresslevel=9))
    assert size <= MAX_GZIPPED, f"widget.js is {size} bytes gzipped, over {MAX_GZIPPED}"
    plain = httpx.get(f"{site.url}/widget.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and plain.content == WIDGET.read_bytes()
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert plain.headers["cache-control"] == "public, max-age=3600"
    zipped = httpx.get(f"{site.url}/widget.js", headers={"accept-encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
    assert int(zipped.headers["content-length"]) <= MAX_GZIPPED
    assert zipped.headers["vary"] == "Accept-Encoding"
    for answer in (plain, zipped):
        again = httpx.get(
            f"{site.url}/widget.js",
            headers={"if-none-match": answer.headers["etag"], "accept-encoding": "gzip"},
        )
        assert again.status_code == 304 and again.content == b""
    changed = httpx.get(f"{site.url}/widget.js", headers={"if-none-match": '"other"'})
    assert changed.status_code == 200


# -- the demo page ------------------------------------------------------------------------------


def test_the_demo_workspace_turns_the_demo_page_on(demo_company: Path) -> None:
    assert load_config(demo_company).in_app.demo_page is True
    assert parse_config("in_app:\n  origins: []\n").in_app.demo_page is False
    with pytest.raises(
        ConfigError, match=r"config.yaml:2: in_app.demo_page: must be true or false"
    ):
        parse_config("in_app:\n  demo_page: yes please\n")


@pytest.mark.parametrize(
    ("index", "placement", "anchor"),
    [(0, "banner", None), (1, "tooltip", "#invite-button"), (2, "modal", None)],
)
def test_each_placement_appears_on_the_demo_page(
    site: Site, open_page: Callable[..., Page], index: int, placement: str, anchor: str | None
) -> None:
    account, user = customer(site, index)
    message = site.queue(account, placement, anchor=anchor)
    listed = httpx.get(f"{site.url}/demo").text
    assert f"/demo?user={user}&amp;account={account}" in listed
    page = open_page()
    page.page.goto(f"{site.url}/demo?user={user}&account={account}")
    card = page.settled(placement)
    assert card.locator(".title").inner_text() == "Your team has outgrown Basic"
    assert card.locator(".cta").get_attribute("href").startswith(f"{site.url}{ACCEPT}")
    role = {"banner": "region", "tooltip": "dialog", "modal": "dialog"}[placement]
    assert card.get_attribute("role") == role
    assert card.locator("button.x").get_attribute("aria-label") == "Close"
    if placement == "modal":
        assert card.get_attribute("aria-modal") == "true"
        labelled = card.get_attribute("aria-labelledby")
        assert card.locator(f"#{labelled}").inner_text() == "Your team has outgrown Basic"
    if placement == "tooltip":
        # It points at its anchor: just below it (or above), its arrow over the anchor's middle.
        box = card.bounding_box()
        target = page.page.locator(anchor).bounding_box()
        assert (
            abs(box["y"] - (target["y"] + target["height"] + 12)) <= 1
            or abs(box["y"] + box["height"] - (target["y"] - 12)) <= 1
        )
        arrow = card.locator(".arrow").bounding_box()
        assert abs(arrow["x"] + arrow["width"] / 2 - (target["x"] + target["width"] / 2)) <= 2
    # The theme of the host page (--upsell-accent) colours the button.
    accent = card.locator(".cta").evaluate("e => getComputedStyle(e).backgroundColor")
    assert accent == "rgb(15, 118, 110)"
    page.page.screenshot(path=str(SCREENSHOTS / f"demo-{placement}.png"))
    assert site.answered(message, "shown") is not None


def test_the_demo_page_says_where_the_offer_leads(
    site: Site, open_page: Callable[..., Page]
) -> None:
    account, user = customer(site, 3)
    message = site.queue(account, "banner")
    page = open_page()
    page.page.goto(f"{site.url}/demo?user={user}&account={account}")
    page.card("banner").locator(".cta").click()
    link = page.page.locator("#checkout-link")
    assert link.get_attribute("href").startswith(f"{site.url}{ACCEPT}")
    assert page.page.url.startswith(f"{site.url}/demo")
    assert site.answered(message, "clicked") is not None
    page.page.locator("upsell-message").wait_for(state="detached")


def test_a_dismissed_message_is_not_shown_again(site: Site, open_page: Callable[..., Page]) -> None:
    account, user = customer(site, 4)
    message = site.queue(account, "banner")
    page = open_page()
    page.page.goto(f"{site.url}/demo?user={user}&account={account}")
    page.card("banner").locator("button.x").click()
    page.page.locator("upsell-message").wait_for(state="detached")
    assert site.answered(message, "dismissed") is not None
    with page.page.expect_response(lambda r: "/v1/messages?" in r.url) as asked:
        page.page.reload()
    assert asked.value.status == 204
    page.page.wait_for_timeout(200)
    assert page.page.locator("upsell-message").count() == 0


# -- a hostile host page of another origin -------------------------------------------------------


def test_hostile_css_neither_breaks_the_widget_nor_is_broken(
    site: Site, open_page: Callable[..., Page]
) -> None:
    """One user of three accounts sees a banner, a tooltip and a modal at once, on a page whose
    CSS unsets everything, hides elements named like the widget's and puts a wall at the top
    z-index over the viewport."""
    accounts = [customer(site, i)[0] for i in (5, 6, 7)]
    user = "consultant-of-three"
    now = datetime.now(UTC)
    with site.writing() as conn:
        upsert_users(conn=conn, users=[User(a, user, now, now) for a in accounts])
    ids = {
        placement: site.queue(account, placement, anchor="#seats")
        for account, placement in zip(accounts, ("banner", "tooltip", "modal"), strict=True)
    }
    page = open_page()
    page.page.goto(f"{site.customer}/")
    before = page.eval("getComputedStyle(document.querySelector('p.cta')).color")
    identify(page, user)
    for placement in ("modal", "banner", "tooltip"):
        page.settled(placement)
    # The modal is on top of everything, the wall included; the page's own .cta kept its style.
    dialog = page.card("modal").bounding_box()
    on_top = page.eval(
        "([x, y]) => document.elementFromPoint(x, y).tagName",
        [dialog["x"] + dialog["width"] / 2, dialog["y"] + 20],
    )
    assert on_top == "UPSELL-MESSAGE"
    assert page.eval("getComputedStyle(document.querySelector('p.cta')).color") == before
    assert page.card("modal").locator(".title").evaluate("e => getComputedStyle(e).fontSize") != (
        "40px"
    )
    page.page.screenshot(path=str(SCREENSHOTS / "hostile-modal.png"))
    # Banner and tooltip are not `shown` while the modal covers them.
    assert site.answered(ids["modal"], "shown") is not None
    assert site.answered(ids["banner"], "shown", timeout=0.3) is None
    page.page.keyboard.press("Escape")
    page.card("modal").wait_for(state="detached")
    for placement in ("banner", "tooltip"):
        card = page.card(placement)
        box = card.bounding_box()
        assert box["width"] > 200 and box["height"] > 80, (placement, box)
        center = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
        assert page.eval("([x, y]) => document.elementFromPoint(x, y).tagName", center) == (
            "UPSELL-MESSAGE"
        )
        assert site.answered(ids[placement], "shown") is not None
    page.page.screenshot(path=str(SCREENSHOTS / "hostile-banner-tooltip.png"))


def test_a_tooltip_waits_for_its_anchor(site: Site, open_page: Callable[..., Page]) -> None:
    """A single-page app shows the element later: the tooltip appears (and is `shown`) then."""
    account, user = customer(site, 15)
    message = site.queue(account, "tooltip", anchor="#later")
    page = open_page()
    page.page.goto(f"{site.customer}/")
    with page.page.expect_response(lambda r: "/v1/messages?" in r.url):
        identify(page, user, account)
    page.page.wait_for_timeout(300)
    assert not page.card("tooltip").is_visible()
    assert site.answered(message, "shown", timeout=0) is None
    page.eval(
        """() => { const b = document.createElement('button'); b.id = 'later';
                   b.textContent = 'Later'; document.querySelector('main').append(b); }"""
    )
    card = page.card("tooltip")
    card.wait_for(state="visible")
    target = page.page.locator("#later").bounding_box()
    assert card.bounding_box()["y"] >= target["y"] + target["height"]
    assert site.answered(message, "shown") is not None


def test_message_text_is_never_html(site: Site, open_page: Callable[..., Page]) -> None:
    account, user = customer(site, 8)
    title = '<img src=x onerror="window.hacked=1"><b>Bold</b>'
    site.queue(account, "banner", title=title)
    page = open_page()
    page.page.goto(f"{site.customer}/")
    identify(page, user, account)
    card = page.card("banner")
    card.wait_for(state="visible")
    assert card.locator(".title").inner_text() == title
    assert card.locator("img, b").count() == 0
    assert page.eval("window.hacked") is None


# -- keyboard, small screens, motion -------------------------------------------------------------


def test_the_modal_traps_focus_esc_closes_it_and_focus_returns(
    site: Site, open_page: Callable[..., Page]
) -> None:
    account, user = customer(site, 9)
    message = site.queue(account, "modal")
    page = open_page()
    page.page.goto(f"{site.customer}/")
    page.page.focus("#before")
    identify(page, user, account)
    page.card("modal").wait_for(state="visible")
    assert page.focused() == "upsell:card modal"  # the dialog itself: its title is read first
    presses = [("Tab", "upsell:x"), ("Tab", "upsell:cta"), ("Tab", "upsell:x")]
    presses += [("Shift+Tab", "upsell:cta"), ("Shift+Tab", "upsell:x")]
    for key, expected in presses:
        page.page.keyboard.press(key)
        assert page.focused() == expected, key
    page.page.keyboard.press("Escape")
    page.card("modal").wait_for(state="detached")
    assert page.focused() == "before"
    assert site.answered(message, "dismissed") is not None


def test_keyboard_only_a_user_tabs_to_the_banner_and_buys(
    site: Site, open_page: Callable[..., Page]
) -> None:
    account, user = customer(site, 10)
    message = site.queue(account, "banner")
    page = open_page()
    page.page.goto(f"{site.customer}/")
    identify(page, user, account)
    page.card("banner").wait_for(state="visible")
    for _ in range(6):
        page.page.keyboard.press("Tab")
        if page.focused() == "upsell:cta":
            break
    assert page.focused() == "upsell:cta"
    page.page.keyboard.press("Enter")
    # The accept link records the click and redirects to the checkout with a signed offer token.
    page.page.wait_for_url(f"{CHECKOUT}?**")
    query = parse_qs(urlsplit(page.page.url).query)
    assert query["account"] == [account] and query["item"] == ["pro"]
    with site.db.connect() as conn:
        secret = signing_secret(conn=conn, purpose="checkout")
    offer = verify(secret, query["upsell_token"][0], now=time.time())
    assert offer["contact_id"] == int(message) and offer["account_id"] == account
    assert offer["offer_id"] == "upsell:basic->pro" and offer["trial_days"] == 14
    assert site.answered(message, "clicked") is not None


@pytest.mark.parametrize(
    ("width", "height"),
    [(360, 640), (640, 360)],  # a phone; a 1280 x 720 screen at 200 % zoom
)
def test_small_screens_and_zoom_keep_everything_readable_and_reachable(
    site: Site, open_page: Callable[..., Page], width: int, height: int
) -> None:
    account, user = customer(site, 11 if width == 360 else 12)
    site.queue(account, "modal")
    page = open_page(viewport={"width": width, "height": height})
    page.page.goto(f"{site.url}/demo?user={user}&account={account}")
    card = page.settled("modal")
    page.page.screenshot(path=str(SCREENSHOTS / f"modal-{width}x{height}.png"))
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.eval("document.documentElement.scrollWidth") <= width
    overflow = card.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow == 0
    # The button can be reached (the dialog scrolls) and used; the demo page says where it leads.
    card.locator(".cta").click()
    page.page.locator("#checkout-link").wait_for(state="visible")


def test_reduced_motion_means_no_animation(site: Site, open_page: Callable[..., Page]) -> None:
    account, user = customer(site, 13)
    site.queue(account, "banner")  # a banner is served until it is answered
    for motion, expected in (("reduce", "none"), ("no-preference", "upsell-in")):
        page = open_page(reduced_motion=motion)
        page.page.goto(f"{site.customer}/")
        identify(page, user, account)
        card = page.card("banner")
        card.wait_for(state="visible")
        assert card.evaluate("e => getComputedStyle(e).animationName") == expected


# -- failures stay inside the widget ---------------------------------------------------------------


def test_network_failures_never_reach_the_host_page(
    site: Site, open_page: Callable[..., Page]
) -> None:
    account, user = customer(site, 14)
    site.queue(account, "banner")
    page = open_page()
    page.page.goto(f"{site.customer}/?poll=1")
    identify(page, user, account)
    page.card("banner").wait_for(state="visible")

    # Answers of the wrong shape are nothing to show; a 500 or an answer that is not JSON changes
    # nothing on the page.
    def answer(status: int, body: str) -> Callable[[Any], None]:
        headers = {"access-control-allow-origin": site.customer}
        return lambda route: route.fulfill(status=status, body=body, headers=headers)

    def check(status: int | None = None, body: str = "") -> None:
        if status is not None:
            page.page.route(f"{site.url}/v1/messages?*", answer(status, body))
        with page.page.expect_response(lambda r: "/v1/messages?" in r.url):
            page.eval("upsell('check')")
        page.page.unroute(f"{site.url}/v1/messages?*")

    check(200, '{"messages": [null, 3, {}, {"id": {}, "placement": "modal"}], "poll_seconds": -1}')
    page.page.locator("upsell-message").wait_for(state="detached")
    check()
    for status, body in ((500, '{"code": "internal"}'), (200, "{not json"), (200, "[]")):
        check(status, body)
        page.page.wait_for_timeout(50)
        assert page.card("banner").is_visible(), (status, body)
    # A server that is gone: the polls and the dismissal's answer fail, silently.
    # (The next test that needs the server starts it again: `Site.up`.)
    site.server.stop(signal.SIGKILL)
    page.page.wait_for_timeout(1500)
    page.eval("upsell('check')")
    page.card("banner").locator("button.x").click()
    page.page.wait_for_timeout(500)
    assert page.eval("document.title") == "Hostile host"
    assert not [e for e in page.console if not e.startswith(NETWORK_LINE)], page.console
    page.console.clear()  # the browser's own network lines, checked above
