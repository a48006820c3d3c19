"""What an import tells its caller: the kinds, the per-row rejections, the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ImportKind(StrEnum):
    """In the order a new database is loaded: reference data, participants, then what happens to them."""

    PLATFORMS = "platforms"
    TRAININGS = "trainings"
    PARTICIPANTS = "participants"
    PAYOUT_ACCOUNTS = "payout-accounts"
    PLATFORM_REPORT = "platform-report"
    PMO_RESULTS = "pmo-results"
    TRANSFERS = "transfers"


class ImportFileError(Exception):
    """The file as a whole cannot be imported (encoding, header, format, a setting the kind needs); `str(exc)` is
    a one-line reason."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One refused row: its 1-based line in the file and a reason `code` or `code: column`."""

    line: int
    reason: str

    @property
    def code(self) -> str:
        return self.reason.partition(":")[0]


@dataclass
class ImportReport:
    kind: ImportKind
    file_name: str
    batch_id: int | None
    rows_read: int
    applied: int
    unchanged: int
    rejected: list[RejectedRow]
    status: str  # "applied" | "rejected"
    # Participants whose certificate or incentive installment was created or changed: to notify them.
    changed_participant_ids: set[int] = field(default_factory=set)
