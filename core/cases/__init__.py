"""Cases: a participant's chat handed to human agents in a staff forum group, one topic per participant.

Split by job: `lifecycle` (the rules of a case's life), `topics` (each participant's forum topic), `relay` (messages
both ways), `staff_posts` (what the bot posts), and `service` (the use cases, one transaction each). Every message
goes through the outbox (Telegram allows a bot ~20 messages a minute per group): late under load, never lost.
"""

from core.cases.lifecycle import CaseRules, NoOpenCase
from core.cases.service import CaseService
from core.cases.views import ACTIVE, CaseView, ChatMessage, Opened, QueuedCase

__all__ = ["ACTIVE", "CaseRules", "CaseService", "CaseView", "ChatMessage", "NoOpenCase", "Opened", "QueuedCase"]
