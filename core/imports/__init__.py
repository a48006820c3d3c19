"""Imports that feed the domain engine: the reference data (platforms, trainings with their institutions),
participants and their payout accounts, platform daily reports, PMO results, payout transfer results.

Each import is validated row by row, all-or-nothing per file, idempotent (a second run changes nothing), and
records every changed fact in the append-only event log with its batch. An empty cell never clears a stored
fact, and a fact from an older file than the one that set it (a platform report by its report_date, PMO results
by their processing date, a transfer result by its date) changes nothing. NIK and card numbers are kept only as
a keyed hash and their last 4 digits, and no reason ever holds one, nor a phone number. Reasons for rejected rows
are codes, optionally followed by the column or a detail: `missing`, `too_long`, `bad_number`, `bad_date`,
`future_date`, `bad_value`, `bad_json`, `unknown_field`, `wrong_column_count`, `date_order`, `duplicate`,
`unknown_participant`, `unknown_platform`, `unknown_training`, `unknown_voucher`, `voucher_mismatch`,
`unknown_installment`, `incomplete_installment`, `unexpected`, `conflicting_certificate`,
`certificate_number_taken`, `installment_other_enrollment`, `bad_nik`, `card_number_as_nik`,
`nik_birth_date_mismatch`, `bad_card_number`, `nik_as_card_number`, `bad_phone`, `participant_mismatch`,
`nik_taken`, `card_number_taken`, `phone_taken`.
"""

from typing import TYPE_CHECKING, Any

from core.imports.report import ImportFileError, ImportKind, ImportReport, RejectedRow

if TYPE_CHECKING:
    from core.imports.runner import run_import

__all__ = ["ImportFileError", "ImportKind", "ImportReport", "RejectedRow", "run_import"]


def __getattr__(name: str) -> Any:
    # The runner (SQLAlchemy, the import kinds) loads on first use: the reading child process imports this
    # package for its parser alone.
    if name == "run_import":
        from core.imports.runner import run_import

        return run_import
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
