# A small desktop for PC Agent-E's loop, run headless in the sandbox: three apps (Notes, Files,
# Settings) drawn as a grid of characters, 48 columns by 14 rows, with a taskbar on the last row.
# Actions are PC Agent-E's, on cells instead of pixels: click(x, y) (column, row from 0),
# type("text") into the focused field, finish(). The state is a small JSON object, so each step
# runs in a fresh process: load, act, draw, dump.
#
# This file is rendered as a template into each program, so it must not contain the template
# language's opening marks (two braces, brace-percent, brace-hash).
import json
import re

MARKER = "@@DESKTOP@@"
END = "@@END@@"
WIDTH, HEIGHT = 48, 14

INITIAL = {
    "open": None,
    "notes": [{"title": "welcome", "body": "hello"}],
    "files": ["a.txt", "photo.png", "report.txt"],
    "dark_mode": False,
    "volume": 50,
    "form": None,
    "fields": {},
    "focus": None,
    "selected": None,
    "done": False,
}


class DesktopError(Exception):
    """An action that could not be read or done."""


def elements(state):
    """The clickable elements on the screen: (id, label, x, y)."""
    out = [("app:notes", "[Notes]", 1, 13), ("app:files", "[Files]", 10, 13), ("app:settings", "[Settings]", 19, 13)]
    app = state["open"]
    if app:
        out.append(("close", "[X]", 44, 1))
    if app == "notes" and state["form"] is None:
        out.append(("notes:new", "[New]", 2, 3))
    elif app == "notes" and state["form"] == "note":
        out.append(("field:title", "Title: [" + state["fields"].get("title", "").ljust(16, "_") + "]", 2, 3))
        out.append(("field:body", "Body:  [" + state["fields"].get("body", "").ljust(24, "_") + "]", 2, 5))
        out.append(("notes:save", "[Save]", 2, 7))
        out.append(("notes:cancel", "[Cancel]", 10, 7))
    elif app == "files" and state["form"] is None:
        for i, name in enumerate(state["files"]):
            mark = ">" if state["selected"] == name else " "
            out.append((f"file:{name}", f"{mark} {name}", 2, 3 + i))
        out.append(("files:delete", "[Delete]", 2, 10))
        out.append(("files:rename", "[Rename]", 12, 10))
    elif app == "files" and state["form"] == "rename":
        out.append(("field:name", "New name: [" + state["fields"].get("name", "").ljust(16, "_") + "]", 2, 4))
        out.append(("files:ok", "[OK]", 2, 6))
    elif app == "settings":
        out.append(("settings:dark", "Dark mode: [" + ("On " if state["dark_mode"] else "Off") + "]", 2, 3))
        out.append(("settings:down", "[-]", 16, 5))
        out.append(("settings:up", "[+]", 20, 5))
    return out


def screen(state):
    """The screen as text: 14 lines of 48 characters."""
    grid = [[" "] * WIDTH for _ in range(HEIGHT)]

    def put(x, y, text):
        for i, ch in enumerate(text):
            if 0 <= x + i < WIDTH and 0 <= y < HEIGHT:
                grid[y][x + i] = ch

    put(0, 0, ("Desktop" + ("  (dark)" if state["dark_mode"] else "")).ljust(WIDTH, "="))
    app = state["open"]
    if app:
        put(1, 1, {"notes": "Notes", "files": "Files", "settings": "Settings"}[app])
    if app == "notes" and state["form"] is None:
        for i, note in enumerate(state["notes"][:5]):
            put(2, 5 + i, f"- {note['title']}: {note['body']}"[:44])
    if app == "settings":
        put(2, 5, f"Volume: {state['volume']:3d}")
    if app == "files" and state["form"] == "rename":
        put(2, 2, f"Renaming {state['selected']}")
    for _, label, x, y in elements(state):
        put(x, y, label)
    put(0, 12, "-" * WIDTH)
    return "\n".join("".join(row).rstrip() for row in grid)


def framed(text):
    """The screen as the agent sees it: column numbers above, row numbers at the left."""
    tens = "".join(str(x // 10) if x % 10 == 0 else " " for x in range(WIDTH))
    ones = "".join(str(x % 10) for x in range(WIDTH))
    lines = ["    " + tens.rstrip(), "    " + ones]
    lines += [f"{y:2d}| {line}" for y, line in enumerate(text.split("\n"))]
    return "\n".join(lines)


def parse_action(text):
    """An action as the agent writes it: click(x, y), type("..."), finish()."""
    text = (text or "").strip()
    m = re.fullmatch(r"click\(\s*(\d+)\s*,\s*(\d+)\s*\)", text)
    if m:
        return ("click", int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"type\(\s*\"(.*)\"\s*\)", text, re.S) or re.fullmatch(r"type\(\s*'(.*)'\s*\)", text, re.S)
    if m:
        return ("type", m.group(1))
    if re.fullmatch(r"finish\(\s*\)", text):
        return ("finish",)
    raise DesktopError(f"not an action: {text!r}; write click(x, y), type(\"text\") or finish()")


def hit(state, x, y):
    for ident, label, ex, ey in elements(state):
        if y == ey and ex <= x < ex + len(label):
            return ident
    return None


def step(state, action):
    """Apply one action; returns what happened, in words."""
    kind = action[0]
    if kind == "finish":
        state["done"] = True
        return "finished"
    if kind == "type":
        if not state["focus"]:
            return "typed, but no field has the focus"
        state["fields"][state["focus"]] = state["fields"].get(state["focus"], "") + action[1]
        return f"typed into {state['focus']}"
    ident = hit(state, action[1], action[2])
    if ident is None:
        return "clicked on nothing"
    if ident.startswith("app:"):
        state.update(open=ident[4:], form=None, fields={}, focus=None, selected=None)
    elif ident == "close":
        state.update(open=None, form=None, fields={}, focus=None, selected=None)
    elif ident == "notes:new":
        state.update(form="note", fields={}, focus=None)
    elif ident.startswith("field:"):
        state["focus"] = ident[6:]
    elif ident == "notes:save":
        title, body = state["fields"].get("title", ""), state["fields"].get("body", "")
        if title:
            state["notes"].append({"title": title, "body": body})
        state.update(form=None, fields={}, focus=None)
    elif ident == "notes:cancel":
        state.update(form=None, fields={}, focus=None)
    elif ident.startswith("file:"):
        state["selected"] = ident[5:]
    elif ident == "files:delete":
        if state["selected"] in state["files"]:
            state["files"].remove(state["selected"])
            state["selected"] = None
    elif ident == "files:rename":
        if state["selected"]:
            state.update(form="rename", fields={}, focus=None)
    elif ident == "files:ok":
        new = state["fields"].get("name", "")
        if new and state["selected"] in state["files"]:
            state["files"][state["files"].index(state["selected"])] = new
            state["files"].sort()
        state.update(form=None, fields={}, focus=None, selected=None)
    elif ident == "settings:dark":
        state["dark_mode"] = not state["dark_mode"]
    elif ident == "settings:down":
        state["volume"] = max(0, state["volume"] - 10)
    elif ident == "settings:up":
        state["volume"] = min(100, state["volume"] + 10)
    return f"clicked {ident}"


def locate(state, label):
    """Where a person would click for the element whose label contains `label`."""
    for _, text, x, y in elements(state):
        if label in text:
            return x + min(len(text) - 1, 1), y
    raise DesktopError(f"no element labelled {label!r} on the screen")


def record(setup, gold, check):
    """Play a scripted gold solution (["click", label] or ["type", text] steps, then finish) as a
    person would: each step's screen, the action in click(x, y) form, and the checker's verdict."""
    state = json.loads(json.dumps(INITIAL))
    state.update(setup or {})
    steps = []
    for kind, arg in gold + [["finish", ""]]:
        before = framed(screen(state))
        if kind == "click":
            x, y = locate(state, arg)
            action = f"click({x}, {y})"
        elif kind == "type":
            action = "type(" + json.dumps(arg) + ")"
        else:
            action = "finish()"
        step(state, parse_action(action))
        steps.append({"screen": before, "action": action})
    print(MARKER + json.dumps({"steps": steps, "success": bool(eval(check, {}, {"s": state})), "state": state}) + END)


def act(state, setup, action_text, check):
    """One step of an agent: apply its action to the state (or the setup's start)."""
    if state is None:
        state = json.loads(json.dumps(INITIAL))
        state.update(setup or {})
    error, what = "", ""
    if action_text is not None:
        try:
            what = step(state, parse_action(action_text))
        except DesktopError as failure:
            error = str(failure)
    out = {"state": state, "screen": framed(screen(state)), "happened": what, "error": error,
           "success": bool(eval(check, {}, {"s": state})) if state["done"] else False}
    print(MARKER + json.dumps(out) + END)
