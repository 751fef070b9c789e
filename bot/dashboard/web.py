"""What every page shares: who is signed in, role and CSRF checks, rendering, headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bot.config import DashboardSection, Role
from bot.dashboard.auth import COOKIE, Auth, Viewer
from bot.dashboard.throttle import SignInThrottle
from bot.text import Rich, Span, Style
from storage.audit import AuditLog
from storage.models import Run

# What every page shares; each page module keys what it uses itself (its `PARTS`).
AUDIT = web.AppKey("audit", AuditLog)
SETTINGS = web.AppKey("settings", DashboardSection)  # read once at start: a reload keeps it
AUTH = web.AppKey("auth", Auth)
THROTTLE = web.AppKey("throttle", SignInThrottle)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
FLASH = web.AppKey("flash", dict[str, str])  # session id -> what the last action achieved

PageHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
FormHandler = Callable[[web.Request, Viewer, dict[str, str]], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a sign-in link must not leak through Referer
    "Cache-Control": "no-store",
}
MAX_FLASHES = 1000
NAV = (
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/jobs", "Jobs"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit"),
    ("/cost", "Cost"),
)


def page(needed: Role = Role.VIEWER) -> Callable[[PageHandler], Handler]:
    """A page for signed-in identities with at least `needed`; others get the sign-in hint."""

    def wrap(handler: PageHandler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            viewer = await request.app[AUTH].viewer(request.cookies.get(COOKIE))
            if viewer is None:
                return sign_in_hint(request)
            if not viewer.may(needed):
                return refuse(request, viewer, f"You need the {needed} role to see this page.")
            return await handler(request, viewer)

        return handle

    return wrap


def action(needed: Role) -> Callable[[FormHandler], Handler]:
    """A form post: signed in, the role, and the session's CSRF token, or nothing happens."""

    def wrap(handler: FormHandler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            viewer = await request.app[AUTH].viewer(request.cookies.get(COOKIE))
            if viewer is None:
                return sign_in_hint(request)
            form = {key: str(value) for key, value in (await request.post()).items()}
            if not request.app[AUTH].csrf_ok(viewer, form.get("csrf", "")):
                return refuse(
                    request,
                    viewer,
                    "This form is out of date or was not sent by this dashboard; "
                    "reload the page and try again.",
                    reason="csrf",
                )
            if not viewer.may(needed):
                return refuse(request, viewer, f"You need the {needed} role to do this.")
            return await handler(request, viewer, form)

        return handle

    return wrap


def refuse(
    request: web.Request, viewer: Viewer, message: str, *, reason: str = "role"
) -> web.Response:
    """403 with a short reason, and an audit event."""
    request.app[AUDIT].record(
        viewer.user, "dashboard.refused", request.path, reason=reason, method=request.method
    )
    return render(request, "refused.html", viewer, status=403, message=message)


def sign_in_hint(request: web.Request, message: str = "", status: int = 401) -> web.Response:
    minutes = request.app[SETTINGS].link_minutes
    return render(
        request, "signin_hint.html", None, status=status, message=message, minutes=minutes
    )


def render(
    request: web.Request,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    **context: object,
) -> web.Response:
    flash = request.app[FLASH].pop(viewer.session, "") if viewer else ""
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(viewer=viewer, nav=NAV, path=request.path, flash=flash, **context)
    )
    return web.Response(text=html, status=status, content_type="text/html")


def see_other(request: web.Request, viewer: Viewer, where: str, said: str) -> NoReturn:
    """After a form: show what happened once, on the page the operator came from."""
    flash = request.app[FLASH]
    if len(flash) >= MAX_FLASHES:  # sessions that posted and never looked again
        flash.clear()
    flash[viewer.session] = said
    raise web.HTTPSeeOther(where)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def not_found_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An address no route knows: the dashboard's own page, not aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        viewer = await request.app[AUTH].viewer(request.cookies.get(COOKIE))
        return render(request, "missing.html", viewer, status=404, what="such page")


def environment(zone: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda moment: when(moment, zone)
    env.filters["money"] = money
    env.filters["rich"] = rich_html
    env.filters["took"] = took
    env.filters["short"] = short
    return env


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    return "—" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S}"


def money(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def took(run: Run) -> str:
    if run.finished_at is None:
        return "…"
    return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"


def short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_EMPHASIS_TAGS = {Style.BOLD: "strong", Style.ITALIC: "em", Style.STRIKE: "del"}
_SAFE_SCHEMES = ("https://", "http://", "mailto:")


def rich_html(text: Rich) -> Markup:
    """Neutral rich text (a chat card, an agent's Markdown) as HTML: the same content the
    chat shows, every character escaped and only these tags written (no attribute but
    a checked link and a code block's language class), so the page's CSP stays strict."""
    parts: list[str] = []
    quoted = False
    for span in text:
        if span.quote != quoted:
            parts.append("<blockquote>" if span.quote else "</blockquote>")
            quoted = span.quote
        parts.append(_span_html(span))
    if quoted:
        parts.append("</blockquote>")
    return Markup("".join(parts))  # noqa: S704  (every part was escaped in _span_html)


def _span_html(span: Span) -> str:
    body = str(escape(span.text))
    if span.style is Style.CODE:
        return f"<code>{body}</code>"
    if span.style is Style.PRE:
        if span.lang:
            return f'<pre><code class="language-{escape(span.lang)}">{body}</code></pre>'
        return f"<pre>{body}</pre>"
    body = body.replace("\n", "<br>")
    if span.style is Style.LINK and span.url.lower().startswith(_SAFE_SCHEMES):
        body = f'<a href="{escape(span.url)}" rel="noreferrer">{body}</a>'
    for style in reversed(span.emphasis):
        tag = _EMPHASIS_TAGS[style]
        body = f"<{tag}>{body}</{tag}>"
    return body
