"""`prakerja-bot chat` with piped stdin (DESIGN.md §4): one message a line, `/contact` shares --phone, `#N` presses
button N of the last reply, replies and buttons come out as plain text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bot.texts import default_renderer
from tests.html_check import check_html

SCRIPT = Path(sys.executable).parent / "prakerja-bot"
_CLEARED = ("REDIS_URL", "BOT_TOKEN", "BOT_API_URL", "STAFF_CHAT_ID", "DEFAULT_LOCALE")


def plain(key: str, **context: object) -> str:
    """A message as the console prints it: Telegram HTML turned into its text."""
    return check_html(default_renderer().render(key, "id", **context)).plain


def chat(
    cwd: Path, database: Path, *lines: str, phone: str = "+6281200000004", **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = (
        {k: v for k, v in os.environ.items() if k not in _CLEARED}
        | {"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
        | env_vars
    )
    return subprocess.run(
        [str(SCRIPT), "chat", "--phone", phone],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def bot_messages(stdout: str) -> list[str]:
    """The bot's replies: each starts with "bot> "; continuation lines (text and buttons) are indented."""
    messages: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("bot> "):
            messages.append(line[5:])
        elif line.startswith("     ") and messages:
            messages[-1] += "\n" + line[5:]
    return messages


def assert_plain_text(stdout: str) -> None:
    assert not re.search(r"</?(b|i|a|code)\b", stdout), "HTML tags reached the terminal"
    assert not re.search(r"&(amp|lt|gt|quot);", stdout), "HTML entities reached the terminal"


def test_a_whole_troubleshooting_conversation(tmp_path: Path) -> None:
    result = chat(
        tmp_path,
        tmp_path / "chat.db",
        "sertifikat saya belum muncul",
        "/contact",
        "17/08/1995",
        "#1",  # "done, still missing": before the date it promised, still within time
        "#2",  # "solved"
    )
    assert result.returncode == 0, result.stderr
    messages = bot_messages(result.stdout)
    welcome, menu, needed, ask_contact, second_factor, linked, summary, step_1, step_2, solved = messages
    assert welcome.startswith("Halo! 👋")
    assert menu.splitlines()[1:] == [
        "[#1] 📜 Sertifikat belum muncul   [#2] 💰 Insentif",
        "[#3] 🔎 Cek status saya   [#4] 🙋 Bicara dengan agen",
    ]
    assert needed == plain("identify_needed")
    assert ask_contact == plain("identify_ask_contact") + "\n[/contact] 📱 Bagikan nomor HP"
    assert second_factor == plain("identify_ask_second_factor")
    assert linked == plain("identify_linked")
    assert summary.splitlines()[0] == "Posisi sertifikat Kak Dedi Kurniawan"
    assert "Digital Marketing untuk UMKM — Pintar (dulu Pintaria), lembaga Skill Academy" in summary
    # Since 2021 the platform reports a finished training without waiting for the rating: Dedi waits for it.
    assert step_1.startswith("Langkah 1/3 — tunggu sampai")
    assert step_1.splitlines()[-1] == "[#1] Sudah, masih belum muncul   [#2] ✅ Sudah beres"
    assert step_2.startswith("⏳ Masih dalam batas waktu")
    assert solved == plain("troubleshoot_solved")
    assert_plain_text(result.stdout)


def test_a_wrong_button_number_is_explained_and_the_chat_goes_on(tmp_path: Path) -> None:
    result = chat(tmp_path, tmp_path / "chat.db", "#9", "#0", "#4", "#1")
    assert result.returncode == 0, result.stderr
    assert "(no button #9 in the last reply)" in result.stdout
    assert "(no button #0 in the last reply)" in result.stdout
    messages = bot_messages(result.stdout)
    # #4 "talk to an agent": no staff group here, so the complaint form; its reply has no buttons, so #1 is wrong too.
    assert messages[-1].startswith("Sampaikan kendalamu lewat formulir pengaduan Prakerja")
    assert "prakerja.go.id/formulir-pengaduan" in messages[-1]
    assert result.stdout.rstrip().endswith("(no button #1 in the last reply)")


def test_with_a_staff_group_the_handoff_is_acknowledged_once_in_the_console(tmp_path: Path) -> None:
    """The acknowledgement is queued with the case (on Telegram the outbox's sender sends it): the console prints it
    after the turn, once, and the case stays open."""
    result = chat(tmp_path, tmp_path / "chat.db", "#4", "halo kak", STAFF_CHAT_ID="-1001234567890")
    assert result.returncode == 0, result.stderr
    messages = bot_messages(result.stdout)
    opened = [m for m in messages if "saya teruskan ke agen kami" in m]
    assert len(opened) == 1 and messages[-1] == opened[0]  # "halo kak" goes to the agent: nothing more here
    assert "Ketik /cancel untuk menutup permintaan ini." in opened[0]
    assert_plain_text(result.stdout)


def test_the_demo_database_is_created_on_first_use_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "there.db"
    first = chat(tmp_path, database, "/status", "/contact", "17 Agustus 1995")
    assert first.returncode == 0, first.stderr
    assert "No demo database yet" in first.stderr
    assert database.is_file()
    assert "Posisi sertifikat Kak Dedi Kurniawan" in first.stdout

    # The next session finds the database and starts unidentified, whoever the last one verified as.
    second = chat(tmp_path, database, "/status", "/contact", "17-08-1995", "/logout", "/status")
    assert second.returncode == 0, second.stderr
    assert "No demo database yet" not in second.stderr
    messages = bot_messages(second.stdout)
    assert messages[2:4] == [
        plain("identify_needed"),
        plain("identify_ask_contact") + "\n[/contact] 📱 Bagikan nomor HP",
    ]
    assert "Posisi sertifikat Kak Dedi Kurniawan" in second.stdout
    assert plain("logout_done") in messages
    assert messages[-2:] == messages[2:4]
