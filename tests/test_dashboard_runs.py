"""The runs pages: paging by an "older" link, run ids shortened as the list shows them,
a filter that does not parse said so (and nothing listed), an HTML 404 page; and what a
stranger's URL can do with the run id and the query string (nothing)."""

from __future__ import annotations

from datetime import timedelta

from storage.models import Run, RunState
from tests.support.dashkit import Dash, dashboard_deck, page

PAGE_SIZE = 100


async def add_runs(dash: Dash, ids: list[str]) -> None:
    """Finished runs, the first newest, one minute apart."""
    now = dash.deck.clock.now()
    async with dash.deck.db.session() as session:
        for age, run_id in enumerate(ids):
            started = now - timedelta(minutes=age)
            session.add(
                Run(
                    id=run_id,
                    agent="echo",
                    chat_id="test:ada",
                    user_id="test:ada",
                    input=f"input of {run_id}",
                    started_at=started,
                    finished_at=started,
                    status=RunState.DONE,
                )
            )
        await session.commit()


def shown_ids(body: str) -> list[str]:
    return [part.split('"', 1)[0] for part in body.split('data-run="')[1:]]


async def test_the_older_link_pages_through_every_run_once() -> None:
    ids = [f"{i:04d}feedbeef{i:020d}" for i in range(PAGE_SIZE * 2 + 5)]
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        await add_runs(dash, ids)
        seen: list[str] = []
        path = "/runs?agent=echo"
        for _ in range(4):
            body = await page(client, path)
            seen += [i for i in shown_ids(body) if i in ids]
            if 'id="older"' not in body:
                break
            path = body.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0]
            path = path.replace("&amp;", "&")
            assert "agent=echo" in path  # the filter stays on while paging
        assert seen == ids  # newest first, each once, none left out
        assert 'id="newest"' in body


async def test_an_eight_character_id_opens_its_run_and_a_shared_prefix_lists_them() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        await add_runs(dash, ["abcdef01" + "1" * 24, "abcdef02" + "2" * 24, "abcdef03" + "3" * 24])
        async with client.get("/runs/abcdef02", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/runs/abcdef02" + "2" * 24
        async with client.get("/runs/abcdef02") as followed:  # the run itself
            assert "input of abcdef02" in await followed.text()
        ambiguous = await page(client, "/runs/abcdef0", status=300)
        assert "Several runs start with" in ambiguous
        assert set(shown_ids(ambiguous)) == {
            "abcdef01" + "1" * 24,
            "abcdef02" + "2" * 24,
            "abcdef03" + "3" * 24,
        }
        assert "There is no run" in await page(client, "/runs/abcdef04", status=404)


async def test_run_ids_in_the_url_are_taken_literally() -> None:
    """LIKE wildcards, too short a prefix, odd characters: not found, never "any run"."""
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        await add_runs(dash, ["abcd_ef1" + "1" * 24, "abcdxef2" + "2" * 24])
        for attack in ("%25%25%25%25", "____", "abcd%25", "a", "abc", "..%2F..%2Fetc", "x" * 65):
            body = await page(client, f"/runs/{attack}", status=404)
            assert "input of" not in body
            assert "<script" not in body.split("</head>")[1]
        # an underscore in a real id is a character, not a wildcard: one match, not two
        async with client.get("/runs/abcd_", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/runs/abcd_ef1" + "1" * 24
        body = await page(client, "/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E", status=404)
        assert "<script>alert" not in body


async def test_a_filter_that_does_not_parse_is_said_and_lists_nothing() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        await add_runs(dash, ["0123456789abcdef" * 2])
        assert shown_ids(await page(client, "/runs")) == ["0123456789abcdef" * 2]
        for query, said in [
            ("status=finished", "no such state"),
            ("since=yesterday", "not a date"),
            ("until=2026-13-45", "not a date"),
            ("before=nosuchrun", "no run"),
            ("before=%25", "no run"),
            ("status=%3Cb%3Ex%3C%2Fb%3E", "no such state"),
        ]:
            body = await page(client, f"/runs?{query}", status=400)
            assert said in body, query
            assert shown_ids(body) == [], query
            assert "<b>x</b>" not in body


async def test_an_unknown_address_is_the_dashboards_404_page() -> None:
    async with dashboard_deck() as dash:
        async with dash.client() as stranger, stranger.get("/no/such/page") as response:
            assert response.status == 404
            assert response.content_type == "text/html"
            assert response.headers["Content-Security-Policy"].startswith("default-src")
            body = await response.text()
            assert "Not found" in body
            assert "<nav>" not in body  # a stranger sees no navigation
        async with dash.signed_in("test:viewer") as client:
            body = await page(client, "/nowhere", status=404)
            assert "Not found" in body
            assert "<nav>" in body


async def test_an_audit_page_number_that_does_not_parse_is_said() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        for attack in ("%C2%B2", "9" * 5000, "-1", "1e3", "%27%20OR%201=1"):
            body = await page(client, f"/audit?before={attack}", status=400)
            assert "not an event number" in body
            assert "dashboard.signin" not in body  # nothing listed
