"""A webhook delivery in, an agent's run out: verify, read, store, answer 202, then run.

Transport-neutral: the listener (`bot.triggers.server`) hands over a trigger, the headers
and the body it read, and sends back the `TriggerAnswer`. The order is the point:
1. the signature or token is checked (else 401, one log line, an audit event);
2. the body is read as JSON and the input made from the template (else a 400 that
   says what is wrong: the sender can fix it, and no run starts on half an input);
3. the delivery is stored by its id (`storage.deliveries`); a retry finds it and runs
   nothing; then the 202 goes out;
4. the run starts in the report chat's lane, as the user `trigger:<name>`, through the
   runner like any run: budgets, approvals (cards in the report chat), its report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Config
from bot.deck import Deck
from bot.runs.runner import Origin
from bot.trigger_spec import TriggerEntry
from bot.trigger_template import MissingField, render
from bot.triggers.verify import verified
from bot.types import Outgoing
from roster.errors import AgentNotFound, AgentUnavailable, ReferenceNotFound
from roster.refs import resolve
from storage.deliveries import Deliveries

log = logging.getLogger(__name__)

ACCEPTED, BAD_REQUEST, UNAUTHORIZED, UNAVAILABLE = 202, 400, 401, 503
MAX_DELIVERY_ID = 200


@dataclass(frozen=True, slots=True)
class TriggerAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


def actor(trigger: TriggerEntry) -> str:
    """Who a trigger's runs and audit events are by."""
    return f"trigger:{trigger.name}"


class Triggers:
    def __init__(self, deck: Deck) -> None:
        self._deck = deck
        self._deliveries = Deliveries(db=deck.db, clock=deck.clock)

    @property
    def config(self) -> Config:
        return self._deck.config

    def by_path(self) -> dict[str, TriggerEntry]:
        return {trigger.path: trigger for trigger in self.config.triggers}

    async def receive(
        self, trigger: TriggerEntry, headers: Mapping[str, str], body: bytes, remote: str
    ) -> TriggerAnswer:
        """Answer one delivery; a new, valid one has its run started (after the answer)."""
        deck, who = self._deck, actor(trigger)
        try:
            secret = resolve(trigger.secret, deck.vault)
        except ReferenceNotFound as exc:
            log.error("trigger %s: its secret is not set: %s", trigger.name, exc)
            return TriggerAnswer(UNAVAILABLE, {"error": "this trigger's secret is not set up"})
        if not verified(trigger, secret, headers, body):
            log.warning("trigger %s: a delivery from %s failed verification", trigger.name, remote)
            deck.audit.record(who, "trigger.refused", trigger.name, remote=remote)
            return TriggerAnswer(UNAUTHORIZED, {"error": "bad signature"})
        try:
            text = self._input(trigger, body)
        except ValueError as exc:
            deck.audit.record(who, "trigger.bad_body", trigger.name, reason=str(exc))
            return TriggerAnswer(BAD_REQUEST, {"error": str(exc)})
        return await self._store(trigger, delivery_id(trigger, headers, body), text)

    def _input(self, trigger: TriggerEntry, body: bytes) -> str:
        """The agent's input from the body; ValueError saying what is wrong with the body."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ValueError("the body is not JSON") from None
        try:
            text = render(trigger.input, data)
        except MissingField as exc:
            raise ValueError(str(exc)) from None
        limit = self.config.deck.max_message_chars
        if len(text) > limit:
            raise ValueError(f"the input made from the body is longer than {limit} characters")
        return text

    async def _store(self, trigger: TriggerEntry, delivery: str, text: str) -> TriggerAnswer:
        deck, who = self._deck, actor(trigger)
        run_id = uuid.uuid4().hex
        stored = deck.vault.redact(text)
        if not await self._deliveries.take(trigger.name, delivery, run_id=run_id, text=stored):
            deck.audit.record(who, "trigger.repeated", trigger.name, delivery=delivery)
            return TriggerAnswer(ACCEPTED, {"delivery": delivery, "status": "already received"})
        deck.audit.record(who, "trigger.received", trigger.name, delivery=delivery, run=run_id)
        self.start(trigger, delivery, run_id, text)
        return TriggerAnswer(ACCEPTED, {"delivery": delivery, "status": "accepted", "run": run_id})

    def start(self, trigger: TriggerEntry, delivery: str, run_id: str, text: str) -> None:
        """Queue the delivery's run in its report chat's lane (after the 202 is sent)."""
        work = self._run(trigger, delivery, run_id, text)
        self._deck.lanes.submit(trigger.report, work)

    async def _run(self, trigger: TriggerEntry, delivery: str, run_id: str, text: str) -> None:
        deck, who = self._deck, actor(trigger)
        await deck.ready.wait()  # a delivery taken while the deck still starts waits for it
        if not await self._deliveries.claim(trigger.name, delivery):
            return  # started already (another process, or before a restart)
        try:
            agent = deck.roster.runnable(trigger.agent)
        except (AgentNotFound, AgentUnavailable) as exc:
            deck.audit.record(who, "trigger.refused_agent", trigger.name, reason=str(exc))
            note = f"Trigger {trigger.name}: {exc}"
            await deck.postman.send(Outgoing.plain(trigger.report, note))
            return
        origin = Origin(chat=trigger.report, user=who, run_id=run_id)
        await deck.runner.start(agent, origin, text)

    async def resume_unstarted(self) -> int:
        """Start the runs of deliveries stored before a crash but never started."""
        triggers = {t.name: t for t in self.config.triggers}
        started = 0
        for row in await self._deliveries.unstarted():
            trigger = triggers.get(row.trigger)
            if trigger is None:
                continue  # the trigger is gone from the config: nothing to run it with
            self.start(trigger, row.delivery_id, row.run_id, row.input)
            started += 1
        return started


def delivery_id(trigger: TriggerEntry, headers: Mapping[str, str], body: bytes) -> str:
    """The sender's delivery id (a retry repeats it), else the body's hash."""
    given = headers.get(trigger.delivery_header, "").strip()
    if given and len(given) <= MAX_DELIVERY_ID and given.isprintable():
        return given
    return "sha256:" + hashlib.sha256(body).hexdigest()
