"""Every command the bot knows, by who may use it: the one place the handlers, the flows and the Telegram command
menu take them from."""

from __future__ import annotations

# A participant's own commands, in the order of the command menu; answered by the bot from any state, never relayed.
PARTICIPANT_COMMANDS: tuple[str, ...] = ("start", "status", "help", "lang", "cancel", "logout")
# An agent's commands in a case's topic (`status` there is the case's fresh card).
STAFF_COMMANDS: frozenset[str] = frozenset({"claim", "note", "status", "canned", "close", "queue"})
# Staff commands that mean nothing in a participant's chat: a participant typing one is told they are for agents.
AGENT_ONLY_COMMANDS: frozenset[str] = STAFF_COMMANDS - set(PARTICIPANT_COMMANDS)
# An admin's commands in a private chat with the bot.
ADMIN_COMMANDS: frozenset[str] = frozenset(
    {
        "faq",
        "faq_show",
        "faq_set",
        "faq_test",
        "faq_history",
        "faq_rollback",
        "faq_delete",
        "faq_export",
        "gaps",
        "stats",
    }
)
