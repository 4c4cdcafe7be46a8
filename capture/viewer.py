"""``bc-capture view``: every trace in ONE self-contained HTML file, readable offline.

A list with search and filters (category, workflow, rating, quality gates, failed calls);
each trace opens into a timeline of prompt → thinking / reasoning → tool call → output →
answer, with the sentences that carry a signal highlighted (constraint, pruning,
self-correction, plan) and large outputs collapsed.

Everything is rendered here, server side, and every piece of captured text goes through
``html.escape``: traces hold arbitrary text (``</script>``, ``<img onerror=…>``). The one
inline script is static and allowed by its hash in a Content-Security-Policy that also
forbids any network access, so even a missed escape could not run code or phone home.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import escape as _html_escape

from claude_bc.capture.gates import GateConfig, gate
from claude_bc.capture.schema import Category, ClaudeTrace, ToolCall, WorkflowType
from claude_bc.capture.signals import MAX_ITEM_CHARS, MAX_SENTENCE, mask_code
from claude_bc.capture.termsafe import visible

COLLAPSE_CHARS = 1200  # outputs longer than this (or COLLAPSE_LINES) start collapsed
COLLAPSE_LINES = 15
MAX_SHOWN = 20_000  # characters of one output or text shown; the rest is cut with a note
_SEPARATOR = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")

SCRIPT = """
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var items = Array.prototype.slice.call(document.querySelectorAll("details.trace"));
  var texts = items.map(function (el) { return el.textContent.toLowerCase(); });
  var controls = ["q", "f-category", "f-workflow", "f-rating", "f-gates", "f-failed"];
  function has(list, value) { return (" " + list + " ").indexOf(" " + value + " ") >= 0; }
  function apply() {
    var words = $("q").value.toLowerCase().split(/\\s+/).filter(Boolean);
    var cat = $("f-category").value, wf = $("f-workflow").value;
    var rating = $("f-rating").value, gates = $("f-gates").value;
    var failed = $("f-failed").checked, shown = 0;
    items.forEach(function (el, i) {
      var d = el.dataset;
      var ok = words.every(function (w) { return texts[i].indexOf(w) >= 0; }) &&
        (!cat || has(d.category, cat)) && (!wf || d.workflow === wf) &&
        (!rating || d.rating === rating) && (!gates || d.gates === gates) &&
        (!failed || d.failed === "1");
      el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    $("count").textContent = shown + " of " + items.length + " traces";
    $("empty").hidden = shown > 0;
  }
  controls.forEach(function (id) {
    $(id).addEventListener("input", apply);
    $(id).addEventListener("change", apply);
  });
  $("expand-all").addEventListener("click", function () {
    items.forEach(function (el) { if (!el.hidden) { el.open = true; } });
  });
  $("collapse-all").addEventListener("click", function () {
    items.forEach(function (el) { el.open = false; });
  });
  if (location.hash.length > 1) {
    var target = document.getElementById(location.hash.slice(1));
    if (target) { target.open = true; target.scrollIntoView(); }
  }
  apply();
})();
"""

STYLE = """
:root { --bg:#f7f7f5; --card:#fff; --ink:#1d1d1f; --muted:#6b6b70; --line:#e3e3e0;
  --ok:#1a7f37; --bad:#c62828; --accent:#3b5bdb; --c:#fff3bf; --p:#e5dbff; --s:#ffd8d8;
  --l:#d3f9d8; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
  color:var(--ink); background:var(--bg); }
header { position:sticky; top:0; z-index:2; background:var(--card);
  border-bottom:1px solid var(--line); padding:10px 20px; }
h1 { font-size:18px; margin:0 0 4px; }
.summary { color:var(--muted); margin:0 0 8px; }
.filters { display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
.filters input[type=search] { flex:1 1 280px; padding:6px 10px; border:1px solid var(--line);
  border-radius:6px; font:inherit; }
.filters select, .filters button { padding:5px 8px; border:1px solid var(--line);
  border-radius:6px; background:#fff; font:inherit; }
#count { color:var(--muted); margin-left:auto; }
main { padding:12px 20px 40px; max-width:1200px; margin:0 auto; }
details.trace { background:var(--card); border:1px solid var(--line); border-radius:8px;
  margin:0 0 8px; }
details.trace > summary { cursor:pointer; padding:8px 12px; display:flex; gap:10px;
  align-items:baseline; flex-wrap:wrap; list-style:none; }
details.trace > summary::-webkit-details-marker { display:none; }
details.trace > summary::before { content:"\\25B8"; color:var(--muted); }
details.trace[open] > summary::before { content:"\\25BE"; }
.when, .tid { color:var(--muted); font-variant-numeric:tabular-nums; }
.tid { font-family:ui-monospace,monospace; }
.prompt { font-weight:600; flex:1 1 300px; overflow:hidden; text-overflow:ellipsis;
  white-space:nowrap; }
.badge { display:inline-block; border-radius:10px; padding:0 7px; font-size:12px;
  background:#eef1f6; color:#34405a; margin-left:3px; }
.badge.up { background:#d3f9d8; color:var(--ok); } .badge.down { background:#ffe3e3;
  color:var(--bad); }
.badge.fail { background:#ffe3e3; color:var(--bad); } .badge.pass { background:#d3f9d8;
  color:var(--ok); }
.body { border-top:1px solid var(--line); padding:10px 14px 14px; }
.meta { color:var(--muted); font-size:12px; margin-bottom:8px; }
.signals { background:#fafafa; border:1px solid var(--line); border-radius:6px;
  padding:8px 10px; margin-bottom:10px; }
.signals h3 { margin:0 0 4px; font-size:13px; }
.signals ul { margin:2px 0 6px 18px; padding:0; }
ol.timeline { list-style:none; margin:0; padding:0 0 0 14px; border-left:2px solid var(--line); }
.step { position:relative; margin:0 0 10px; padding-left:10px; }
.step::before { content:""; position:absolute; left:-21px; top:6px; width:10px; height:10px;
  border-radius:50%; background:var(--line); border:2px solid var(--card); }
.step.prompt::before { background:var(--accent); } .step.answer::before { background:var(--ok); }
.step.call.failed::before { background:var(--bad); }
.step.sub { margin-left:24px; }
.label { font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.03em;
  color:var(--muted); }
.tool { font-weight:700; color:var(--ink); text-transform:none; letter-spacing:0;
  font-size:13px; }
.status.ok { color:var(--ok); } .status.failed { color:var(--bad); }
pre { white-space:pre-wrap; word-break:break-word; margin:4px 0; padding:6px 8px;
  background:#f4f4f2; border-radius:6px; font:12px/1.4 ui-monospace,Menlo,monospace; }
pre.error { background:#fff0f0; }
.text { white-space:pre-wrap; margin:4px 0; }
.thinking .text { color:var(--muted); font-style:italic; }
mark { border-radius:3px; padding:0 2px; }
mark.constraint { background:var(--c); } mark.pruning { background:var(--p); }
mark.correction { background:var(--s); } mark.plan { background:var(--l); }
.legend mark { margin-right:6px; }
.cut { color:var(--muted); font-style:italic; }
#empty { text-align:center; color:var(--muted); }
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)
assert '"' not in CSP  # it sits in a double-quoted attribute


def escape(text: str, quote: bool = True) -> str:
    """HTML-escaped, with control, bidi and invisible characters shown as ``<U+XXXX>``
    (a U+202E in a file name is seen, not obeyed)."""
    return _html_escape(visible(text), quote)


# --- highlighting ------------------------------------------------------------------------


def _spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence or line of ``text``, as ``signals.sentences`` cuts it."""
    pos = 0
    for m in _SEPARATOR.finditer(text):
        yield pos, m.start()
        pos = m.end()
    yield pos, len(text)


def _signal_sets(trace: ClaudeTrace) -> dict[str, set[str]]:
    s = trace.reasoning_signals
    return {
        "constraint": set(s.constraints_detected),
        "pruning": set(s.pruning_decisions),
        "correction": set(s.self_corrections),
    }


def highlight(text: str, signals: dict[str, set[str]], plan: str | None = None) -> str:
    """``text`` escaped, with each sentence the extractor kept as a signal in a <mark>."""
    shown = text[:MAX_SHOWN]
    out: list[str] = []
    pos = 0
    for start, end in _spans(shown):
        sentence = shown[start:end]
        key = mask_code(sentence).strip()[:MAX_SENTENCE][:MAX_ITEM_CHARS]
        kinds = [k for k, items in signals.items() if key and key in items]
        if plan and key and key in plan and len(key) > 20:
            kinds.append("plan")
        if not kinds:
            continue
        out.append(escape(shown[pos:start]))
        title = ", ".join(kinds)
        out.append(f'<mark class="{kinds[0]}" title="{title}">{escape(sentence)}</mark>')
        pos = end
    out.append(escape(shown[pos:]))
    if len(text) > MAX_SHOWN:
        out.append(f'<span class="cut"> … {len(text) - MAX_SHOWN:,} more characters</span>')
    return "".join(out)


# --- pieces ------------------------------------------------------------------------------


def _pre(text: str, cls: str = "") -> str:
    body = escape(text[:MAX_SHOWN])
    if len(text) > MAX_SHOWN:
        body += f'<span class="cut"> … {len(text) - MAX_SHOWN:,} more characters</span>'
    return f'<pre class="{cls}">{body}</pre>' if cls else f"<pre>{body}</pre>"


def _output(text: str, cls: str = "") -> str:
    lines = text.count("\n") + 1
    if len(text) <= COLLAPSE_CHARS and lines <= COLLAPSE_LINES:
        return _pre(text, cls)
    return (
        f'<details class="output"><summary>output: {lines:,} lines, {len(text):,} characters'
        f"</summary>{_pre(text, cls)}</details>"
    )


def _args(call: ToolCall) -> str:
    command = call.args.get("command")
    if isinstance(command, str) and set(call.args) <= {"command", "description", "timeout"}:
        return _pre("$ " + command)
    return _pre(json.dumps(call.args, indent=1, ensure_ascii=False))


def _call(call: ToolCall, signals: dict[str, set[str]], plan: str | None) -> str:
    parts: list[str] = []
    sub = " sub" if call.agent_id else ""
    if call.thinking.strip():
        parts.append(
            f'<li class="step thinking{sub}"><details><summary class="label">thinking</summary>'
            f'<div class="text">{highlight(call.thinking, signals, plan)}</div></details></li>'
        )
    if call.reasoning.strip():
        parts.append(
            f'<li class="step reasoning{sub}"><div class="label">reasoning</div>'
            f'<div class="text">{highlight(call.reasoning, signals, plan)}</div></li>'
        )
    # css class by success; the label says what happened (denied, interrupted, unknown)
    status = "ok" if call.success else "failed"
    label = "ok" if call.success else {"error": "failed"}.get(call.outcome or "", str(call.outcome))
    took = f" · {call.duration_ms:,} ms" if call.duration_ms is not None else ""
    who = f" · subagent {escape(call.agent_type or call.agent_id or '')}" if call.agent_id else ""
    batch = f" · batch {call.batch}" if call.batch is not None else ""
    result = call.error if not call.success and call.error else call.output
    parts.append(
        f'<li class="step call {status}{sub}"><div class="label">tool call '
        f'<span class="tool">{escape(call.tool)}</span> <span class="status {status}">'
        f"{escape(label)}</span>{took}{batch}{who}</div>{_args(call)}"
        f"{_output(result, 'error' if not call.success else '') if result else ''}</li>"
    )
    return "".join(parts)


def _signals_box(trace: ClaudeTrace, reasons: list[str]) -> str:
    s = trace.reasoning_signals
    rows = [
        f"<div><b>tools</b> {escape(' → '.join(s.tool_sequence) or 'none')} · "
        f"<b>depth</b> {s.exploration_depth.value} · <b>workflow</b> {s.workflow_type.value} · "
        f"<b>steps</b> {s.reasoning_steps}</div>",
        f"<div><b>categories</b> {escape(', '.join(c.value for c in s.categories) or 'none')}"
        f" · <b>quality gates</b> {'pass' if not reasons else escape(', '.join(reasons))}</div>",
    ]
    for title, cls, items in (
        ("explicit plan", "plan", [s.explicit_plan] if s.explicit_plan else []),
        ("constraints", "constraint", s.constraints_detected),
        ("pruning decisions", "pruning", s.pruning_decisions),
        ("self-corrections", "correction", s.self_corrections),
    ):
        if items:
            lis = "".join(f'<li><mark class="{cls}">{escape(i)}</mark></li>' for i in items)
            rows.append(f"<h3>{title}</h3><ul>{lis}</ul>")
    return f'<section class="signals">{"".join(rows)}</section>'


def _when(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if dt else "—"


def render_trace(trace: ClaudeTrace, gates: GateConfig | None = None) -> str:
    s = trace.reasoning_signals
    reasons = gate(trace, gates)
    signals = _signal_sets(trace)
    failed = sum(not c.success for c in trace.tool_calls)
    badges = "".join(f'<span class="badge">{c.value}</span>' for c in s.categories)
    badges += f'<span class="badge">{s.workflow_type.value}</span>'
    n = len(trace.tool_calls)
    badges += f'<span class="badge">{n} tool{"" if n == 1 else "s"}</span>'
    if failed:
        badges += f'<span class="badge fail">{failed} failed</span>'
    if trace.rating:
        badges += f'<span class="badge {trace.rating}">rated {trace.rating}</span>'
    badges += (
        '<span class="badge pass">passes gates</span>'
        if not reasons
        else '<span class="badge fail">excluded</span>'
    )
    attrs = {
        "id": f"t-{trace.trace_id}",
        "data-category": " ".join(c.value for c in s.categories),
        "data-workflow": s.workflow_type.value,
        "data-rating": trace.rating or "unrated",
        "data-gates": "fail" if reasons else "pass",
        "data-failed": "1" if failed else "0",
    }
    attr_text = " ".join(f'{k}="{escape(v)}"' for k, v in attrs.items())
    prompt_line = " ".join(trace.user_prompt.split())[:200]
    meta = " · ".join(
        escape(x)
        for x in (
            f"trace {trace.trace_id}",
            f"session {trace.session_id or '—'}",
            f"model {trace.model or '—'}",
            f"claude code {trace.claude_code_version or '—'}",
            f"sources {', '.join(trace.sources) or '—'}",
            f"complete {trace.complete}",
            f"rating {trace.rating or 'none'}"
            + (f" ({trace.rating_note})" if trace.rating_note else ""),
        )
    )
    steps = [
        f'<li class="step prompt"><div class="label">prompt</div>{_pre(trace.user_prompt)}</li>'
    ]
    if trace.prompt_expansion:
        steps.append(
            f'<li class="step prompt"><div class="label">{escape(trace.command or "command")} '
            f"expanded to</div>{_pre(trace.prompt_expansion)}</li>"
        )
    steps += [_call(c, signals, s.explicit_plan) for c in trace.tool_calls]
    steps += [
        f'<li class="step event"><div class="label">{escape(e.kind.replace("_", " "))}</div>'
        f"{_pre(e.text)}</li>"
        for e in trace.events
    ]
    if trace.final_thinking.strip():
        steps.append(
            '<li class="step thinking"><details><summary class="label">thinking</summary>'
            f'<div class="text">{highlight(trace.final_thinking, signals)}</div></details></li>'
        )
    answer = highlight(trace.claude_response, signals) if trace.claude_response else "(none)"
    steps.append(
        f'<li class="step answer"><div class="label">answer</div><div class="text">{answer}'
        "</div></li>"
    )
    return (
        f'<details class="trace" {attr_text}><summary><span class="when">'
        f'{_when(trace.started_at)}</span><span class="tid">{escape(trace.trace_id[:8])}</span>'
        f'<span class="prompt">{escape(prompt_line)}</span><span>{badges}</span></summary>'
        f'<div class="body"><div class="meta">{meta}</div>{_signals_box(trace, reasons)}'
        f'<ol class="timeline">{"".join(steps)}</ol></div></details>'
    )


def _options(values: list[str], label: str) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<option value="">{escape(label)}</option>{opts}'


def render_html(traces: list[ClaudeTrace], gates: GateConfig | None = None) -> str:
    """The whole page: newest trace first."""
    ordered = sorted(
        traces,
        key=lambda t: t.started_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    passed = sum(not gate(t, gates) for t in traces)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    legend = (
        '<span class="legend"><mark class="constraint">constraint</mark>'
        '<mark class="pruning">pruning</mark><mark class="correction">self-correction</mark>'
        '<mark class="plan">plan</mark></span>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{escape(CSP, quote=False)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>claude-bc traces</title><style>{STYLE}</style></head>
<body><header><h1>claude-bc traces</h1>
<p class="summary">{len(traces)} traces · {passed} pass the quality gates · made {made} · {legend}
</p><div class="filters">
<input id="q" type="search" placeholder="Search prompts, reasoning, tool calls, outputs, answers"
 autocomplete="off">
<select id="f-category">{_options([c.value for c in Category], "all categories")}</select>
<select id="f-workflow">{_options([w.value for w in WorkflowType], "all workflows")}</select>
<select id="f-rating">{_options(["up", "down", "unrated"], "any rating")}</select>
<select id="f-gates"><option value="">gates: any</option><option value="pass">passes gates
</option><option value="fail">excluded</option></select>
<label><input type="checkbox" id="f-failed"> with failed calls</label>
<button type="button" id="expand-all">expand all</button>
<button type="button" id="collapse-all">collapse all</button>
<span id="count">{len(traces)} traces</span></div></header>
<main id="list">{"".join(render_trace(t, gates) for t in ordered)}
<p id="empty" hidden>No trace matches the search and filters.</p></main>
<script>{SCRIPT}</script></body></html>
"""
