"""Signing in with a link from chat, and out again.

Opening the link shows a button; only pressing it uses the link up. Chat apps fetch
links to draw previews, and such a fetch must not spend a one-time link.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.config import Role
from bot.dashboard.auth import COOKIE, Viewer
from bot.dashboard.errors import SignInRefused
from bot.dashboard.web import AUDIT, AUTH, SETTINGS, THROTTLE, action, render, sign_in_hint

TOO_MANY = "Too many sign-in links from here did not work; wait a minute and try again."


async def signin_page(request: web.Request) -> web.StreamResponse:
    """GET /signin?t=...: who the link signs in, and a button to do it."""
    token = request.query.get("t", "")
    try:
        claims = request.app[AUTH].check_link(token)
    except SignInRefused as exc:
        return _refused(request, exc)
    return render(request, "signin.html", None, token=token, user=claims.user)


async def signin(request: web.Request) -> web.StreamResponse:
    """POST /signin: use the link up and open a session."""
    form = await request.post()
    token = str(form.get("t", ""))
    try:
        claims, cookie = await request.app[AUTH].redeem(token)
    except SignInRefused as exc:
        return _refused(request, exc)
    request.app[AUDIT].record(claims.user, "dashboard.signin", claims.chat)
    response = web.HTTPSeeOther("/")
    settings = request.app[SETTINGS]
    hours = settings.session_hours
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(timedelta(hours=hours).total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.public_url.startswith("https://"),
    )
    raise response


@action(Role.VIEWER)
async def signout(request: web.Request, viewer: Viewer, form: dict[str, str]) -> web.StreamResponse:
    await request.app[AUTH].sign_out(viewer)
    request.app[AUDIT].record(viewer.user, "dashboard.signout", viewer.chat)
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


def _refused(request: web.Request, exc: SignInRefused) -> web.Response:
    """403 with the reason; counted per address (`throttle`), 429 past the limit."""
    if request.app[THROTTLE].refused(request.remote or "", type(exc).__name__):
        return sign_in_hint(request, str(exc), status=403)
    return sign_in_hint(request, TOO_MANY, status=429)
