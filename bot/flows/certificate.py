"""Certificate troubleshooting: a summary of every training, then the steps in the order the diagnosis says.

```mermaid
stateDiagram-v2
    idle --> choose_enrollment: several trainings
    idle --> troubleshoot: one training
    choose_enrollment --> troubleshoot: pick one
    troubleshoot --> troubleshoot: "done, still missing" (next step)
    troubleshoot --> idle: "solved" / last step (complaint form, agent)
```
"""

from __future__ import annotations

from datetime import date

from bot.flows import incentive
from bot.flows.agent import hand_over
from bot.flows.callbacks import Action
from bot.flows.deadlines import with_deadlines
from bot.flows.state import Phase
from bot.flows.turn import Turn
from bot.flows.types import Button
from bot.flows.views import diagnosis_view
from core.calendar import today_in_jakarta
from core.diagnosis import Diagnosis, ParticipantStatus, Stage, Step, troubleshooting_steps

# Stages where the certificate is settled and only the incentive is left: /status shows the incentive's own
# buttons, not certificate steps (which would repeat the certificate and add a second person button).
_INCENTIVE_STAGES = frozenset({Stage.INCENTIVE_SCHEDULED, Stage.INCENTIVE_TRANSFERRED, Stage.INCENTIVE_FAILED})


async def start(turn: Turn, participant_id: int, with_incentive: bool = False) -> None:
    """The summary of every training (`with_incentive`: and of the incentive, as /status promises), then the steps
    for the one training, or a choice of training."""
    status = await _summary(turn, participant_id, with_incentive, buttons=True)
    if status is None:
        return
    if with_incentive and all(d.stage in _INCENTIVE_STAGES for d in status.diagnoses):
        return
    if len(status.diagnoses) == 1:
        await _begin(turn, participant_id, status.diagnoses[0])
        return
    turn.state.phase = Phase.CHOOSE_ENROLLMENT
    rows = [
        (
            turn.raw_button(
                f"{d.enrollment.training_title[:38]} · {platform_name(turn, d.enrollment.platform_code)}",
                Action.ENROLLMENT,
                str(d.enrollment_id),
            ),
        )
        for d in status.diagnoses
        if d.enrollment is not None
    ]
    turn.say("certificate_choose", *rows)


async def overview(turn: Turn, participant_id: int) -> None:
    """The certificate and incentive summary alone, without steps or buttons (while an agent has the chat)."""
    await _summary(turn, participant_id, with_incentive=True, buttons=False)


async def _summary(turn: Turn, participant_id: int, with_incentive: bool, buttons: bool) -> ParticipantStatus | None:
    """Says the summary; returns the records when there are trainings to go through (None: nothing more to do)."""
    status = await turn.records(participant_id)
    if status is None:
        return None
    views = [diagnosis_view(turn.services.directory, d, turn.locale) for d in status.diagnoses]
    if status.diagnoses[0].stage is Stage.NOT_PURCHASED:
        turn.say("certificate_not_purchased", d=views[0], name=status.facts.legal_name)
        return None
    text = turn.text("certificate_summary", diagnoses=views, name=status.facts.legal_name)
    agent: tuple[Button, ...] = ()
    if with_incentive:
        # One message: the participant reads where each certificate and each payment stands together.
        incentive_text, agent = incentive.summary(turn, status, in_status=True)
        text = f"{text}\n\n{incentive_text}"
    text = with_deadlines(turn, status, text)  # the dates that cost money, under the summary
    turn.say_text(text, agent if buttons else ())
    return status


async def choose(turn: Turn, participant_id: int, enrollment_id: str) -> None:
    status = await turn.services.status.status(participant_id)
    chosen = _find(status, enrollment_id)
    if chosen is None:
        turn.notice = turn.text("button_expired")
        return
    await _begin(turn, participant_id, chosen)


async def step(turn: Turn, participant_id: int, answer: str) -> None:
    """ "next": the step did not help, show the following one; "solved": close the flow happily."""
    state = turn.state
    if answer == "solved":
        state.phase = Phase.IDLE
        turn.say("troubleshoot_solved")
        return
    if answer == "fixed":
        await incentive.fixed(turn, participant_id)
        return
    status = await turn.services.status.status(participant_id)
    chosen = _find(status, str(state.enrollment))
    if chosen is None or state.phase is not Phase.TROUBLESHOOT:
        turn.notice = turn.text("button_expired")
        return
    waiting_until = _wait_until(state.wait_until)
    if state.steps[state.step_index] == Step.WAIT and waiting_until and today_in_jakarta() <= waiting_until:
        # Before the promised date nothing is late: say so, rather than sending them to the platform or an agent.
        turn.say(
            "step_wait_within_time",
            (
                turn.button("btn_step_next", Action.STEP, "next"),
                turn.button("btn_step_solved", Action.STEP, "solved"),
            ),
            wait_until=waiting_until,
        )
        return
    state.step_index = min(state.step_index + 1, len(state.steps) - 1)
    await _show_step(turn, participant_id, chosen)


def _wait_until(stored: str) -> date | None:
    try:
        return date.fromisoformat(stored) if stored else None
    except ValueError:
        return None


def _find(status: ParticipantStatus | None, enrollment_id: str) -> Diagnosis | None:
    if status is None or not enrollment_id.isdecimal():
        return None
    return next((d for d in status.diagnoses if d.enrollment_id == int(enrollment_id)), None)


async def _begin(turn: Turn, participant_id: int, d: Diagnosis) -> None:
    state = turn.state
    state.phase = Phase.TROUBLESHOOT
    state.enrollment = d.enrollment_id or 0
    state.steps = [s.value for s in troubleshooting_steps(d)]
    state.step_index = 0
    state.wait_until = ""
    await _show_step(turn, participant_id, d)


async def _show_step(turn: Turn, participant_id: int, d: Diagnosis) -> None:
    state = turn.state
    current = Step(state.steps[state.step_index])
    view = diagnosis_view(turn.services.directory, d, turn.locale)
    last = current is Step.ESCALATE
    staffed = turn.services.cases is not None and turn.services.cases.staffed
    escalate_now = staffed and (last or d.overdue)
    rows: list[tuple[Button, ...]] = []
    if not last and not escalate_now:
        rows.append(
            (
                turn.button("btn_step_next", Action.STEP, "next"),
                turn.button("btn_step_solved", Action.STEP, "solved"),
            )
        )
    wait_until = None
    if current is Step.WAIT:
        # The date is fixed when the step is first shown: a wait counted from "today" would never run out.
        wait_until = _wait_until(state.wait_until) or d.on_time_until or d.expected_by or today_in_jakarta()
        state.wait_until = wait_until.isoformat()
    if last:
        state.phase = Phase.IDLE
    # Without a staff group the escalation step points to the complaint form itself: no agent button to promise.
    turn.say(
        f"step_{current.value}",
        *rows,
        d=view,
        number=state.step_index + 1,
        total=len(state.steps),
        complaint=turn.services.directory["complaint_form"],
        staffed=staffed,
        wait_until=wait_until,
    )
    if escalate_now:
        # The steps did not solve it, or the records say it is overdue: a person takes the case now.
        await hand_over(turn, participant_id, "overdue" if d.overdue else "unresolved")


def platform_name(turn: Turn, code: str) -> str:
    return str(turn.services.platform(code, turn.locale)["name"])
