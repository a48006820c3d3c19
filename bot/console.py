"""Console chat: the same conversation as on Telegram, in a terminal or from piped input.

One message per line; `/contact` shares the phone given with --phone (as your own contact); `#N` presses button N
of the last reply. Replies and buttons are printed as plain text.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, TextIO

from bot.app import App
from bot.flows.types import Button, EventKind, Incoming, Outcome
from core.outbox import PARTICIPANT, BotReply, Outbox

CONSOLE_USER_ID = 1_000_001  # a stand-in Telegram user id for the terminal user


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            text = "".join(self._link_text)
            self.parts.append(text if text == self._href else f"{text} ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        (self._link_text if self._href is not None else self.parts).append(data)


def html_to_text(text: str) -> str:
    parser = _PlainText()
    parser.feed(text)
    parser.close()
    return html.unescape("".join(parser.parts))


_BUTTON_PRESS = re.compile(r"^#(\d{1,3})$")


class ConsoleChat:
    def __init__(self, app: App, phone: str | None, out: TextIO) -> None:
        self.app = app
        self.phone = phone
        self.out = out
        self.state: dict[str, Any] | None = None
        self.buttons: list[Button] = []
        self.outbox = Outbox(app.engine)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def event_for(self, line: str) -> Incoming | None:
        if line == "/contact":
            if not self.phone:
                self.print("(start the chat with --phone +62… to share a phone number)")
                return None
            return Incoming(
                EventKind.CONTACT, CONSOLE_USER_ID, contact_phone=self.phone, contact_user_id=CONSOLE_USER_ID
            )
        if match := _BUTTON_PRESS.match(line):
            number = int(match.group(1))
            if not 1 <= number <= len(self.buttons):
                self.print(f"(no button #{number} in the last reply)")
                return None
            return Incoming(EventKind.BUTTON, CONSOLE_USER_ID, self.buttons[number - 1].data)
        if line.startswith("/") and len(line) > 1:
            command, _, argument = line[1:].partition(" ")
            return Incoming(EventKind.COMMAND, CONSOLE_USER_ID, command.split("@")[0], argument)
        return Incoming(EventKind.TEXT, CONSOLE_USER_ID, line)

    def show(self, outcome: Outcome) -> None:
        if outcome.notice:
            self.print(f"({html_to_text(outcome.notice)})")
        if not outcome.replies:
            return
        self.buttons = []
        for reply in outcome.replies:
            self.print("bot> " + html_to_text(reply.text).replace("\n", "\n     "))
            for row in reply.buttons:
                labels = []
                for button in row:
                    self.buttons.append(button)
                    labels.append(f"[#{len(self.buttons)}] {button.label}")
                self.print("     " + "   ".join(labels))
            if reply.request_contact:
                self.print(f"     [/contact] {reply.request_contact}")
        self.print()

    async def say(self, line: str) -> None:
        event = self.event_for(line)
        if event is None:
            return
        outcome = await self.app.conversation.handle(event, self.state)
        self.state = outcome.state
        self.show(outcome)
        await self.show_queued()

    async def show_queued(self) -> None:
        """The bot's replies queued with a change (a case opened, when a staff group is set): on Telegram the
        outbox's sender delivers them; here they are printed, and marked sent."""
        items = [
            item
            for item in await self.outbox.due(PARTICIPANT, limit=300)
            if item.chat_id == CONSOLE_USER_ID and isinstance(item.message, BotReply)
        ]
        taken = set(await self.outbox.mark_sending([item.id for item in items])) if items else set()
        for item in items:
            if item.id in taken and isinstance(item.message, BotReply):
                self.print("bot> " + html_to_text(item.message.text_html).replace("\n", "\n     "))
                self.print()
        if taken:
            await self.outbox.mark_sent(sorted(taken))

    async def run(self, read_line: Callable[[], str | None]) -> None:
        # Each console session starts unidentified, whichever persona the previous one verified as.
        await self.app.services.accounts.logout(CONSOLE_USER_ID)
        await self.say("/start")
        while True:
            line = await asyncio.to_thread(read_line)
            if line is None:
                return
            line = line.strip()
            if line in ("/quit", "/exit"):
                return
            if line:
                await self.say(line)


def stdin_reader(interactive: bool) -> Callable[[], str | None]:
    def read() -> str | None:
        if interactive:
            try:
                return input("you> ")
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line if line else None

    return read
