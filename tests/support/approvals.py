"""A deck of approvers on the `ChatRecorder`: its people (`USERS`), a gated command agent
(`gated`), and the approval id a card names."""

from __future__ import annotations

from tests.fakes.chat import Posted

USERS = """
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:ada"
role = "operator"
[[users]]
id = "test:bob"
role = "operator"
[[users]]
id = "test:viewer"
role = "viewer"
"""


def gated(extra: str = "", command: str = '["echo", "{input}"]') -> str:
    """`USERS` and a `deploy` command agent whose every run needs an approval."""
    return (
        USERS
        + f"""
[[agents]]
name = "deploy"
kind = "command"
command = {command}
approval = "always"
approvers = ["test:ada", "test:bob", "admin"]
{extra}
"""
    )


def approval_id(card: Posted) -> str:
    """The id in a card's text: `Approval needed (<id>)`."""
    return card.text.split("(", 1)[1].split(")", 1)[0]
