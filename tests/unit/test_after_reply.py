"""after_reply: what an endpoint call logs is written once its reply is on its way."""

from __future__ import annotations

import asyncio

from netpathd.mptcp_manager import after_reply


async def test_a_call_reports_after_the_reply_its_task_sends() -> None:
    """dbus-fast sends the reply from a done callback it adds before the handler runs."""
    order: list[str] = []

    async def handler() -> None:
        after_reply(lambda: order.append("logged"))
        order.append("returned")

    task = asyncio.ensure_future(handler())
    task.add_done_callback(lambda _: order.append("replied"))
    await task
    await asyncio.sleep(0)  # the done callbacks run one turn of the loop later
    assert order == ["returned", "replied", "logged"]


def test_outside_a_task_the_report_is_made_at_once() -> None:
    order: list[str] = []
    after_reply(lambda: order.append("logged"))
    assert order == ["logged"]
