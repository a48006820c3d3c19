"""`prakerja-bot faq match`: the matcher over questions from stdin, as the bot in use would answer them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.settings import Settings
from core.faq_store import faq_in_use


def register(sub: Any) -> None:
    faq = sub.add_parser("faq", help="FAQ tools")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True, metavar="FAQ_COMMAND")
    match = faq_sub.add_parser("match", help="match questions from stdin, one JSON line each")
    match.set_defaults(handler=cmd_faq_match)


async def cmd_faq_match(settings: Settings, args: argparse.Namespace) -> int:
    from core.faq import FaqMatcher, load_off_topic, load_slang

    matcher = FaqMatcher(await faq_in_use(settings.database_url), load_slang(), load_off_topic())
    for line in sys.stdin:
        question = line.rstrip("\r\n")
        # One output line per input line, blank ones included, so that the two files pair up line by line.
        result = matcher.match(question)
        # A close call ("did you mean") still names its best entry; only "no match" is null.
        print(
            json.dumps(
                {"question": question, "faq_id": result.faq_id, "score": round(result.score, 1)},
                ensure_ascii=False,
            ),
            flush=True,
        )
    return 0
