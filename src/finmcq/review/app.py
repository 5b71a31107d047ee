"""``finmcq review RUN_DIR``: a local web page over the run's store (Starlette + Jinja2, uvicorn).

Pages are rendered on the server; a small script (``static/review.js``, no build step, nothing
from a CDN) sends actions as JSON ``fetch`` requests and swaps the re-rendered page in place, and
binds the keyboard shortcuts. Every action is saved in the store at once (see
:mod:`finmcq.review.decisions`), so a reload or a restart shows it.

Served on 127.0.0.1 by default. Another ``--host`` must be asked for explicitly, and then every
request needs the token printed in the URL (kept in a same-site cookie after the first page).
Actions are accepted only as ``application/json`` from the page's own origin, which a form on
another site cannot send.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from finmcq.errors import ConfigError
from finmcq.records import LETTERS
from finmcq.review import queries
from finmcq.review.decisions import ItemEdit, ReviewLog, open_review_db
from finmcq.review.edits import EditRefused, changed_fields, check_edit, parse_edit
from finmcq.review.index import FLAGS, ensure_index, read_record
from finmcq.rundir import find_run, question_of

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "finmcq_review_token"
MAX_TEXT = 20_000


@dataclass
class ReviewContext:
    run_dir: Path
    token: str | None

    def __post_init__(self) -> None:
        self.files = find_run(self.run_dir)  # the clearest message for a wrong folder
        self.db = open_review_db(self.run_dir)
        self.log = ReviewLog(self.db)
        ensure_index(self.db, self.files)

    def refresh(self) -> None:
        """Pick up a newer build's files (the page may stay open across a rebuild)."""
        files = find_run(self.run_dir)
        ensure_index(self.db, files)
        self.files = files


_env = Environment(loader=PackageLoader("finmcq.review", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def _render(name: str, **context: Any) -> str:
    return _env.get_template(name).render(**context)


class _TokenGuard(BaseHTTPMiddleware):
    """With a token: every request carries it (URL or cookie) or gets 403."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is None:
            return await call_next(request)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return HTMLResponse(
                "<!doctype html><title>finmcq review</title><p>This review server needs its "
                "token: open the URL that <code>finmcq review</code> printed (it ends in "
                "<code>?token=…</code>).</p>", status_code=403)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response


def _filters(request: Request) -> queries.Filters:
    return queries.Filters.from_query(request.query_params,
                                      request.query_params.getlist("flag"))


def _common(ctx: ReviewContext, filters: queries.Filters) -> dict[str, Any]:
    return {"run_dir": ctx.run_dir, "timestamp": ctx.files.timestamp, "filters": filters,
            "progress": queries.progress(ctx.db), "topics": queries.topics(ctx.db),
            "flags": FLAGS, "letters": LETTERS, "states": queries.STATES,
            "origins": queries.ORIGINS, "difficulties": queries.DIFFICULTIES}


def build_app(run_dir: Path, *, token: str | None = None) -> Starlette:
    """The review app for ``run_dir``; ``InputError`` when it is not a finished run."""
    ctx = ReviewContext(Path(run_dir), token)

    async def index(request: Request) -> Response:
        ctx.refresh()
        filters = _filters(request)
        after = _int(request.query_params.get("after"))
        before = _int(request.query_params.get("before"))
        size = min(500, max(5, _int(request.query_params.get("size")) or queries.PAGE_SIZE))
        page = queries.page(ctx.db, filters, after=after, before=before, size=size)
        if filters.tab == "dropped":
            for row in page.rows:
                row["question"] = question_of(ctx.db, row["item_id"])
        html = _render("list.html", page=page, size=size, count_cap=queries.COUNT_CAP,
                       stages=queries.stages(ctx.db), reasons=queries.reasons(ctx.db),
                       **_common(ctx, filters))
        return HTMLResponse(html)

    async def item(request: Request) -> Response:
        ctx.refresh()
        item_id = request.path_params["item_id"]
        filters = _filters(request)
        row = queries.item_row(ctx.db, item_id)
        if row is None:
            drops = queries.dropped_rows(ctx.db, item_id)
            if not drops:
                return HTMLResponse(_render("missing.html", item_id=item_id,
                                            **_common(ctx, filters)), status_code=404)
            return HTMLResponse(_render("dropped.html", item_id=item_id, drops=drops,
                                        question=question_of(ctx.db, item_id),
                                        history=ctx.log.history(item_id),
                                        **_common(ctx, filters)))
        record = read_record(ctx.files, row["line_offset"])
        state, reason, edit = ctx.log.state(item_id)
        prev_id, next_id = queries.neighbours(ctx.db, filters, row["seq"])
        html = _render("item.html", row=row, record=record, shown=_shown(record, edit),
                       state=state, reason=reason, edit=edit,
                       changed=changed_fields(record, edit) if edit else [],
                       history=ctx.log.history(item_id), prev_id=prev_id, next_id=next_id,
                       **_common(ctx, filters))
        return HTMLResponse(html)

    async def act(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        action = request.path_params["action"]
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return _error("actions are sent as application/json by the review page", 415)
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            return _error("actions are accepted only from the review page itself", 403)
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return _error("the request body is not JSON", 400)
        if not isinstance(body, dict):
            return _error("the request body must be a JSON object", 400)
        ctx.refresh()
        row = queries.item_row(ctx.db, item_id)
        if row is None:
            return _error(f"{item_id} is not a delivered item of the latest build", 404)

        def also(db: Any, state: str) -> None:
            queries.set_state(db, item_id, state)

        if action == "accept":
            ts = ctx.log.record(item_id, "accept", also=also)
        elif action in ("reject", "comment"):
            text = str(body.get("reason" if action == "reject" else "text") or "").strip()
            if not text:
                what = "a reason" if action == "reject" else "some text"
                return _error(f"a {action} needs {what}", 422)
            ts = ctx.log.record(item_id, action, reason=text[:MAX_TEXT], also=also)
        elif action == "edit":
            record = read_record(ctx.files, row["line_offset"])
            try:
                edit = parse_edit(body)
                if (edit.solution or "").strip() == str(record.get("solution") or "").strip():
                    edit = ItemEdit(edit.question, edit.options, edit.answer, None)
                check_edit(edit)
            except EditRefused as exc:
                return JSONResponse({"ok": False, "error": str(exc), "check": exc.reason,
                                     "where": exc.where}, status_code=422)
            if not changed_fields(record, edit) and ctx.log.state(item_id)[2] is None:
                return _error("the edit changes nothing", 422)
            before = {k: record.get(k) for k in ("question", "options", "answer", "solution")}
            ts = ctx.log.record(item_id, "edit", edit=edit, before=before, also=also)
        else:
            return _error(f"unknown action {action}", 404)
        state, reason, _edit = ctx.log.state(item_id)
        return JSONResponse({"ok": True, "item_id": item_id, "action": action, "ts": ts,
                             "state": state, "reason": reason,
                             "progress": queries.progress(ctx.db)})

    routes = [
        Route("/", index),
        Route("/item/{item_id:path}", item),
        Route("/action/{action}/{item_id:path}", act, methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[("finmcq.review", "static")]),
              name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_TokenGuard, token=token)])
    app.state.review = ctx
    return app


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def _shown(record: dict[str, Any], edit: ItemEdit | None) -> dict[str, Any]:
    """What the item view shows: the delivered item, or the reviewer's edit of it."""
    options = record.get("options") or {}
    shown = {"question": record.get("question", ""), "answer": record.get("answer", ""),
             "options": [options.get(ch, "") for ch in LETTERS],
             "solution": record.get("solution", "")}
    if edit is not None:
        shown.update(question=edit.question, answer=edit.answer, options=list(edit.options))
        if edit.solution is not None:
            shown["solution"] = edit.solution
    return shown


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Cannot serve the review on {host}:{port}: {exc.strerror}",
                          fix="Choose another --port (0 picks a free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(run_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
          allow_remote: bool = False, echo: Any = print) -> None:
    """Serve the review page until interrupted; prints the URL first."""
    import uvicorn

    token = None
    if host not in LOOPBACK:
        if not allow_remote:
            raise ValueError("a host other than 127.0.0.1 needs allow_remote")
        token = secrets.token_urlsafe(24)
    echo(f"reading {run_dir} (a new build's items are indexed once: ~1 s per 3,000)")
    app = build_app(run_dir, token=token)
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/" + (f"?token={token}" if token else "")
    echo(f"review of {run_dir} at {url}")
    echo("every action is saved at once; press Ctrl+C to stop")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
