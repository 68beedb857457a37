"""Transcripts: markdown (``sessions show``, ``sessions export --format markdown``, the REPL's
``/save``) and JSON (``sessions export --format json``: everything the store holds).

Markdown is sanitised: ``cat chat.md`` must not run an escape sequence a model or tool planted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..messages import MediaPart, Message, Part, ReasoningPart, TextPart, ToolCall, Usage
from ..ui.render import sanitize
from . import codec

if TYPE_CHECKING:
    from .store import SessionInfo, StoredMessage


@dataclass(frozen=True)
class Entry:
    message: Message
    piped: int | None = None
    unanswered: str | None = None
    """Why a prompt got no reply (a failed or killed turn), shown beside it."""


def local_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _fence(text: str, info: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{info}\n{text}\n{ticks}"


REASONING = "reasoning"
"""The segment kind (and the markdown label) of a model's reasoning in a transcript."""


def segments(title: str, meta: Sequence[str], system: str | None,
             entries: Iterable[Entry]) -> list[tuple[str, str]]:
    """The transcript as ``("markdown", text)`` and ``(REASONING, text)`` pieces, in order, so
    a terminal can show the reasoning apart (dim) and ``markdown`` can label it."""
    out: list[tuple[str, str]] = []
    lines = [f"# {title}", ""]
    if meta:
        lines += [" · ".join(meta), ""]
    if system:
        lines += ["## System", "", system, ""]
    for entry in entries:
        m = entry.message
        if m.role == "user":
            label = ""
            if entry.piped:
                label = (" (piped input)" if entry.piped >= len(m.text) else
                         f" (with {entry.piped:,} characters of piped input)")
            if entry.unanswered:
                label += f" (not answered: {entry.unanswered})"
            lines += [f"## You{label}", "", *([m.text, ""] if m.text else []),
                      *_attachment_lines(m.media)]
        elif m.role == "assistant":
            lines += ["## Assistant" + (" (interrupted)" if m.interrupted else ""), ""]
            for p in _merged(m.parts):
                if isinstance(p, ReasoningPart):
                    out.append(("markdown", "\n".join(lines)))
                    out.append((REASONING, p.text))
                    lines = [""]
                elif isinstance(p, TextPart):
                    lines += [p.text, ""]
                elif isinstance(p, ToolCall):
                    lines += [f"**tool call** `{p.name}`", "", _fence(p.arguments, "json"), ""]
        else:
            for r in m.tool_results:
                label = " (error)" if r.is_error else ""
                lines += [f"**tool result** `{r.name}`{label}", "", _fence(r.content), "",
                          *_attachment_lines(r.media)]
    out.append(("markdown", "\n".join(lines)))
    return [(kind, sanitize(text)) for kind, text in out if kind == REASONING or text.strip()]


def _attachment_lines(media: Sequence[MediaPart]) -> list[str]:
    """Each attachment by name, type and size (never its bytes), with its URL if it had one."""
    lines = [f"- attachment: {p.describe()}" + (f" from {p.url}" if p.url and p.url != p.name
                                                 else "") for p in media]
    return [*lines, ""] if lines else []


def _merged(parts: Sequence[Part]) -> list[Part]:
    """Adjacent text parts as one; reasoning without readable text left out (it is kept,
    opaque, in the JSON export)."""
    out: list[Part] = []
    for p in parts:
        if isinstance(p, ReasoningPart) and not p.text.strip():
            continue
        if isinstance(p, TextPart) and out and isinstance(out[-1], TextPart):
            out[-1] = TextPart(out[-1].text + p.text)
        elif not isinstance(p, TextPart) or p.text:
            out.append(p)
    return out


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.strip().split("\n"))


def markdown(title: str, meta: Sequence[str], system: str | None,
             entries: Iterable[Entry]) -> str:
    """The conversation as markdown: tool calls and results as fenced blocks, the model's
    reasoning as a quote labelled **reasoning**."""
    pieces = [text if kind != REASONING else f"**{REASONING}**\n\n{_quote(text)}\n"
              for kind, text in segments(title, meta, system, entries)]
    return "\n".join(p.strip("\n") + "\n" for p in pieces).rstrip() + "\n"


def entries(stored: Sequence[StoredMessage],
            turns: Sequence[dict[str, Any]] = ()) -> list[Entry]:
    """The conversation as it stands, plus the prompts that never got a reply, marked: one
    whose request failed or was interrupted (its turn record says how; the prompt left the
    conversation) and one whose process was killed while waiting (no turn record)."""
    ended = {t["turn"]: t for t in turns}
    per_turn: dict[int, int] = {}
    for s in stored:
        per_turn[s.turn] = per_turn.get(s.turn, 0) + 1
    live = [s for s in stored if not s.dropped]
    killed = {live[i].seq for i in codec.unanswered([s.message for s in live])}
    out = []
    for s in stored:
        why = None
        if s.message.role == "user" and per_turn[s.turn] == 1:
            record = ended.get(s.turn)
            if s.dropped and record is not None:
                why = record.get("error") or record.get("stop_reason") or "no reply"
            elif s.seq in killed:
                why = "agentcli was stopped before the reply came"
        if s.dropped and why is None:
            continue
        out.append(Entry(s.message, s.piped, why))
    return out


def session_markdown(info: SessionInfo, stored: Sequence[StoredMessage],
                     cost: str | None = None, turns: Sequence[dict[str, Any]] = ()) -> str:
    return markdown(*_session_parts(info, stored, cost, turns))


def session_segments(info: SessionInfo, stored: Sequence[StoredMessage],
                     cost: str | None = None,
                     turns: Sequence[dict[str, Any]] = ()) -> list[tuple[str, str]]:
    """``sessions show`` on a terminal: the transcript's pieces (see ``segments``)."""
    return segments(*_session_parts(info, stored, cost, turns))


def _session_parts(info: SessionInfo, stored: Sequence[StoredMessage], cost: str | None,
                   turns: Sequence[dict[str, Any]]
                   ) -> tuple[str, list[str], str | None, list[Entry]]:
    meta = [f"session {info.id}", f"started {local_time(info.created)}",
            f"{info.provider or '?'} · {info.model or '?'}",
            f"{info.turns} turn{'s' if info.turns != 1 else ''}",
            f"tokens: {info.usage.describe()}"]
    if info.role:
        meta.append(f"role: {info.role}")
    if cost:
        meta.append(f"cost: {cost}")
    return (info.title or "(untitled conversation)", meta, info.system,
            entries(stored, turns))


def _usage_json(u: Usage | None) -> dict[str, Any] | None:
    return None if u is None else u.as_json()


def session_json(info: SessionInfo, stored: Sequence[StoredMessage],
                 turns: Sequence[dict[str, Any]], cost: Any = None) -> dict[str, Any]:
    """Everything the store holds about one session (dropped messages included, flagged)."""
    messages = []
    for s in stored:
        item: dict[str, Any] = {
            "seq": s.seq, "turn": s.turn, "role": s.message.role,
            "created": iso_time(s.created),
            "parts": codec.parts_as_json(s.message.parts),
            "interrupted": s.message.interrupted, "dropped": s.dropped,
        }
        if s.piped:
            item["piped_chars"] = s.piped
        if s.message.role == "assistant":
            item.update(provider=s.provider, model=s.model, stop_reason=s.stop_reason,
                        usage=_usage_json(s.usage))
            reasoning = "\n\n".join(p.text for p in s.message.reasoning if p.text)
            if reasoning:
                item["reasoning"] = reasoning  # readable; the parts keep the opaque data
        if s.verdicts:
            item["approvals"] = json.loads(s.verdicts)
        messages.append(item)
    return {
        "id": info.id, "title": info.title, "created": iso_time(info.created),
        "updated": iso_time(info.updated), "provider": info.provider, "model": info.model,
        "system": info.system, "role": info.role, "turns": info.turns,
        "usage": info.usage.as_json(), "cost": cost.as_json() if cost is not None else None,
        "messages": messages,
        "turn_records": [{**t, "ended": iso_time(t["ended"])} for t in turns],
    }


def summary_json(info: SessionInfo) -> dict[str, Any]:
    """One row of ``sessions list --json``."""
    return {"id": info.id, "started": iso_time(info.created), "updated": iso_time(info.updated),
            "provider": info.provider, "model": info.model, "turns": info.turns,
            "messages": info.messages, "first_words": info.title, "role": info.role,
            "usage": info.usage.as_json()}
