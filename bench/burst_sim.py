"""What-if for the burst: the measured work time of each note, replayed through other scheduling policies.

A discrete-event simulation of one worker: notes arrive at their moments, and whenever the worker is
free a policy picks the next one. The work times are those the FIFO run measured, so the simulated
FIFO reproduces the measured one and the others show what a different order would have given on the
same burst, without changing core/. "length-weighted turns" restates core/jobs/scheduler.py's choice of the
next note; batching (several short notes in one engine call) is not simulated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bench.burst_notes import Note
from chatscribe.core.jobs.scheduler import TURN_S

AGEING = 1.0
"""Seconds of media length forgiven per second waited, as in core/jobs/scheduler.py."""


@dataclass
class _State:
    now: float = 0.0
    turn: int = 0
    last_turn: dict[str, float] = field(default_factory=dict)
    virtual: float = 0.0
    """Self-clocked fair queueing: the finish tag of the note last started."""
    last_tag: dict[str, float] = field(default_factory=dict)
    tags: dict[int, float] = field(default_factory=dict)


Policy = Callable[[list[Note], _State], Note]


def _fifo(waiting: list[Note], state: _State) -> Note:
    return min(waiting, key=lambda n: n.arrival_s)


def _urgency(note: Note, state: _State) -> float:
    return note.duration_s - AGEING * (state.now - note.arrival_s)


def _round_robin_turns(waiting: list[Note], state: _State) -> Note:
    """The chat served longest ago (a new chat first), then its most urgent note."""
    first = min(waiting, key=lambda n: (state.last_turn.get(n.chat_id, -math.inf), n.arrival_s))
    return min((n for n in waiting if n.chat_id == first.chat_id), key=lambda n: (_urgency(n, state), n.arrival_s))


def _weighted_turns(waiting: list[Note], state: _State) -> Note:
    """core/jobs/scheduler.py: each further waiting note of a chat, and a chat served more recently than the one
    served longest ago, counts TURN_S seconds of media more; then the most urgent note of any chat."""

    def served(chat_id: str) -> float:
        return state.last_turn.get(chat_id, -math.inf)

    longest_ago = min(served(n.chat_id) for n in waiting)
    ranks: dict[str, int] = {}
    scores: dict[int, float] = {}
    for note in sorted(waiting, key=lambda n: (_urgency(n, state), n.arrival_s)):
        rank = ranks.get(note.chat_id, int(served(note.chat_id) > longest_ago))
        ranks[note.chat_id] = rank + 1
        scores[note.index] = _urgency(note, state) + TURN_S * rank
    return min(waiting, key=lambda n: (scores[n.index], served(n.chat_id), n.arrival_s))


def _shortest_first(waiting: list[Note], state: _State) -> Note:
    """The most urgent note of any chat: shortest first, ageing so long ones still get their turn."""
    return min(waiting, key=lambda n: (_urgency(n, state), n.arrival_s))


def _fair_queueing(waiting: list[Note], state: _State) -> Note:
    """Self-clocked fair queueing on audio seconds: each note's tag is where it would finish if every chat
    with work got an equal share; the smallest tag goes first. Short notes of a quiet chat come before the
    tenth recording of a busy one, without starving anyone (tags only grow)."""
    return min(waiting, key=lambda n: (state.tags[n.index], n.arrival_s))


POLICIES: dict[str, Policy] = {
    "FIFO": _fifo,
    "length-weighted turns between chats (core/jobs/scheduler.py's order)": _weighted_turns,
    "plain round robin by turns, shortest first within a chat": _round_robin_turns,
    "shortest first across all chats, with ageing": _shortest_first,
    "fair queueing on audio seconds (finish tags)": _fair_queueing,
}


def simulate(notes: tuple[Note, ...], work_s: Mapping[int, float], policy: Policy) -> dict[int, float]:
    """Seconds from arrival to answer for each note, one worker, no overhead besides the work itself."""
    pending = sorted(notes, key=lambda n: n.arrival_s)
    state = _State()
    waiting: list[Note] = []
    waits: dict[int, float] = {}
    while pending or waiting:
        if not waiting:
            state.now = max(state.now, pending[0].arrival_s)
        while pending and pending[0].arrival_s <= state.now:
            note = pending.pop(0)
            waiting.append(note)
            tag = max(state.virtual, state.last_tag.get(note.chat_id, 0.0)) + note.duration_s
            state.tags[note.index] = state.last_tag[note.chat_id] = tag
        chosen = policy(waiting, state)
        waiting.remove(chosen)
        state.turn += 1
        state.last_turn[chosen.chat_id] = state.turn
        state.virtual = state.tags[chosen.index]
        state.now += work_s[chosen.index]
        waits[chosen.index] = state.now - chosen.arrival_s
    return waits
