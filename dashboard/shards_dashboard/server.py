"""The dashboard's routes: the page, its JSON API, and one Server-Sent Events channel per page.

Every action goes through the controller, so the CLI's validation and guards apply; errors are
one-line JSON ({"error": ..., "kind": ...}). Blocking store calls run in the thread pool (plain
`def` endpoints); only the event stream is async."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from shards.errors import (
    ConfirmationRequired,
    InvalidArgs,
    NotActive,
    ProcessActive,
    ShardsError,
    StoreUnavailable,
    TimedOut,
    UnknownProcess,
    UnknownRun,
    UnknownSchedule,
    UnknownScope,
)
from shards.records import ProcessRecord
from shards_controller import Controller
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from shards_dashboard import views
from shards_dashboard.auth import NEEDS_TOKEN, SESSION_COOKIE, SESSION_TTL, Guard, Refused, host_allowed
from shards_dashboard.feed import Follower
from shards_dashboard.hub import Hub, TooManyPages

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet event stream
PURGE_TIMEOUT = 30.0
MAX_NOTE = 500  # characters of a pause's note
STATUS = {UnknownScope: 404, UnknownProcess: 404, UnknownRun: 404, UnknownSchedule: 404,
          ConfirmationRequired: 409, ProcessActive: 409, NotActive: 409, InvalidArgs: 400,
          StoreUnavailable: 503, TimedOut: 504, TooManyPages: 503}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def problem(error: ShardsError) -> JSONResponse:
    status = error.status if isinstance(error, Refused) else next(
        (code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
    return JSONResponse({"error": str(error), "kind": type(error).__name__}, status_code=status)


def note_of(body: dict[str, Any]) -> str:
    note = body.get("note", "")
    if note is None:
        return ""
    if not isinstance(note, str):
        raise InvalidArgs("the note must be a string")
    if len(note) > MAX_NOTE:
        raise InvalidArgs(f"the note must be at most {MAX_NOTE} characters, got {len(note)}")
    return " ".join(note.split())  # one line: it is shown in a table cell and in `schedule get`


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Dashboard:
    """The routes, over one controller, hub and guard."""

    def __init__(self, controller: Controller, hub: Hub, guard: Guard, *, scope: str = "default",
                 follower: Follower | None = None) -> None:
        self.controller = controller
        self.hub = hub
        self.guard = guard
        self.scope = scope
        self.follower = follower

    # -- reads ----------------------------------------------------------------------------------
    def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def config(self, request: Request) -> Response:
        """Open to all, so the page knows to ask for the token; says nothing more until then."""
        if not authorized(self.guard, request):
            return JSONResponse({"tokenRequired": True, "authenticated": False})
        return JSONResponse({"scope": self.scope, "readOnly": self.guard.read_only,
                             "tokenRequired": self.guard.token_required, "authenticated": True})

    # -- sessions -------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        """The token, posted once as JSON from the page, for a session cookie (the token is
        never in a URL, so never in a log or a history)."""
        try:
            self.guard.check_request(request.headers.get("content-type"), request.headers.get("origin"),
                                     request.headers.get("host"))
        except Refused as refused:
            return problem(refused)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        given = body.get("token") if isinstance(body, dict) else None
        if not self.guard.token:
            return JSONResponse({"authenticated": True})
        if not isinstance(given, str) or not self.guard.is_token(given.strip()):
            return problem(Refused("wrong token", 401))
        answer = JSONResponse({"authenticated": True})
        answer.set_cookie(SESSION_COOKIE, self.guard.new_session(), max_age=SESSION_TTL, path="/",
                          httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return answer

    async def logout(self, request: Request) -> Response:
        try:
            self.guard.check_request(request.headers.get("content-type"), request.headers.get("origin"),
                                     request.headers.get("host"))
        except Refused as refused:
            return problem(refused)
        answer = JSONResponse({"authenticated": False})
        answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                             secure=request.url.scheme == "https")
        return answer

    def scopes(self, request: Request) -> Response:
        return self._answer(lambda: {"scopes": self.controller.scope_ids()})

    def processes(self, request: Request) -> Response:
        scope = request.path_params["scope"]
        wanted = views.filters(request.query_params)
        return self._answer(lambda: {"scope": scope, "now": views.now_iso(),
                                     "records": views.process_docs(self.controller.list(scope, **wanted))})

    def history(self, request: Request) -> Response:
        scope, pid = request.path_params["scope"], request.path_params["pid"]
        try:
            limit = max(1, min(int(request.query_params.get("limit", "20")), 200))
        except ValueError:
            limit = 20
        return self._answer(lambda: views.history(self.controller, scope, pid, limit))

    def runs(self, request: Request) -> Response:
        """The scope's runs of the last `?minutes=` (60), at most `?limit=` (500): the timeline."""
        scope, params = request.path_params["scope"], request.query_params
        minutes = views.bounded(params.get("minutes"), views.RUNS_WINDOW, views.MAX_WINDOW)
        limit = views.bounded(params.get("limit"), views.RUNS_LIMIT, views.MAX_RUNS)
        return self._answer(lambda: views.runs_window(self.controller, scope, minutes, limit))

    def logs(self, request: Request) -> Response:
        """A run's log, as `shards logs` has it: its last lines (the dropped marker first)."""
        scope, pid, run = (request.path_params[k] for k in ("scope", "pid", "run"))
        return self._answer(lambda: views.run_log(self.controller, scope, pid, run))

    def workers(self, request: Request) -> Response:
        return self._answer(lambda: views.workers(self.controller))

    def schedules(self, request: Request) -> Response:
        """The schedules of `?scope=` (every scope's without it)."""
        scope = request.query_params.get("scope") or None
        return self._answer(lambda: views.schedules(self.controller, scope))

    def stats(self, request: Request) -> Response:
        pages = self.hub.pages()
        return JSONResponse({"pages": len(pages), "changes": self.follower.changes if self.follower else 0,
                             "offered": sum(p.offered for p in pages), "sent": sum(p.sent for p in pages)})

    # -- actions --------------------------------------------------------------------------------
    async def launch(self, request: Request) -> Response:
        return await self._act(request, lambda scope, pid, body: self.controller.launch(
            scope, pid, confirm=body.get("confirm") is True))

    async def stop(self, request: Request) -> Response:
        return await self._act(request, lambda scope, pid, body: self.controller.stop(
            scope, pid, force=body.get("force") is True))

    async def dismiss(self, request: Request) -> Response:
        return await self._act(request, lambda scope, pid, body: self.controller.dismiss(scope, pid))

    async def _act(self, request: Request,
                   act: Callable[[str, str, dict[str, Any]], ProcessRecord]) -> Response:
        """An action on one process, through the controller: its record after, or the refusal."""
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        scope, pid = request.path_params["scope"], request.path_params["pid"]
        return await run_in_threadpool(self._answer, lambda: {"record": act(scope, pid, body).to_json()})

    async def pause(self, request: Request) -> Response:
        return await self._act_on_schedule(request, lambda scope, name, body: {
            "schedule": self.controller.schedules.pause(scope, name, note_of(body)).to_json()})

    async def unpause(self, request: Request) -> Response:
        return await self._act_on_schedule(request, lambda scope, name, body: {
            "schedule": self.controller.schedules.unpause(scope, name, note_of(body)).to_json()})

    async def trigger(self, request: Request) -> Response:
        """Fire the schedule now (its overlap policy applies): what that did, and the schedule after."""
        def fire(scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            action = self.controller.schedules.trigger(scope, name)
            return {"action": views.action_doc(action),
                    "schedule": self.controller.schedules.get(scope, name).to_json()}
        return await self._act_on_schedule(request, fire)

    async def _act_on_schedule(self, request: Request,
                               act: Callable[[str, str, dict[str, Any]], dict[str, Any]]) -> Response:
        """An action on one schedule, through the controller, under the same guard as a process's."""
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        scope, name = request.path_params["scope"], request.path_params["name"]
        return await run_in_threadpool(self._answer, lambda: act(scope, name, body))

    async def purge(self, request: Request) -> Response:
        """Redefine the scope from scratch (define --clean): idle records go, the catalog is
        written again; active processes stay."""
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        scope = request.path_params["scope"]

        def redefine() -> dict[str, Any]:
            self.controller.list(scope)  # an unknown scope says so, rather than being defined here
            defined = self.controller.wait_defined(self.controller.define(scope, clean=True), PURGE_TIMEOUT)
            self.hub.resync(scope)
            return {"scope": defined.to_json()}
        return await run_in_threadpool(self._answer, redefine)

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            self.guard.check_action(request.headers.get("authorization"), request.headers.get("content-type"),
                                    request.headers.get("origin"), request.headers.get("host"),
                                    request.cookies.get(SESSION_COOKIE))
        except Refused as refused:
            return problem(refused)
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object", "kind": "BadRequest"},
                                status_code=400)
        return body

    @staticmethod
    def _answer(compute: Callable[[], dict[str, Any]]) -> Response:
        try:
            return JSONResponse(compute())
        except ShardsError as error:
            return problem(error)

    # -- the push channel -----------------------------------------------------------------------
    async def events(self, request: Request) -> Response:
        scope = request.path_params["scope"]
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:  # from the feed's thread
            loop.call_soon_threadsafe(woken.set)
        try:
            page = self.hub.subscribe(scope, wake, client=request.client.host if request.client else "")
        except TooManyPages as error:
            return problem(error)
        return StreamingResponse(self._stream(page, woken), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _snapshot(self, scope: str) -> str:
        try:
            return sse("snapshot", await run_in_threadpool(views.snapshot, self.controller, scope))
        except ShardsError as error:  # an unknown scope: empty until it is defined
            empty = {"scope": scope, "now": views.now_iso(), "records": [], "problem": str(error)}
            return sse("snapshot", empty)

    async def _stream(self, page: Any, woken: asyncio.Event) -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n" + await self._snapshot(page.scope)
            while True:
                try:
                    await asyncio.wait_for(woken.wait(), HEARTBEAT)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                delay = page.delay(time.monotonic())
                if delay:
                    await asyncio.sleep(delay)
                woken.clear()
                docs, resync = page.take(time.monotonic())
                if resync:
                    yield await self._snapshot(page.scope)
                elif docs:
                    yield sse("changes", {"now": views.now_iso(), "records": docs})
        finally:
            self.hub.unsubscribe(page)


OPEN_API = {"/api/config", "/api/login", "/api/logout"}  # with a token, the rest of /api needs it


def authorized(guard: Guard, request: Request) -> bool:
    return guard.authorized(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))


def guarded(app: ASGI, bound_host: str, guard: Guard) -> ASGI:
    """Security headers on every response; on a loopback-bound server, a Host that is not
    loopback (DNS rebinding) is refused; with a token, every API request but OPEN_API needs
    it (or a session): reads as much as actions. The page's shell stays open."""
    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not host_allowed(host, bound_host):
            await JSONResponse({"error": f"unexpected Host {host!r}", "kind": "Refused"},
                               status_code=421)(scope, receive, send)
            return
        path = scope.get("path", "")
        if (guard.token and path.startswith("/api/") and path not in OPEN_API
                and not authorized(guard, Request(scope))):
            await JSONResponse({"error": NEEDS_TOKEN, "kind": "Refused"}, status_code=401,
                               headers={"Cache-Control": "no-store"})(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)
        await app(scope, receive, send_with_headers)
    return call


def build_app(dashboard: Dashboard, bound_host: str = "127.0.0.1") -> ASGI:
    d = dashboard
    process = "/api/scopes/{scope}/processes/{pid}"
    schedule = "/api/schedules/{scope}/{name}"
    routes = [
        Route("/", d.index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/api/config", d.config),
        Route("/api/login", d.login, methods=["POST"]),
        Route("/api/logout", d.logout, methods=["POST"]),
        Route("/api/scopes", d.scopes),
        Route("/api/workers", d.workers),
        Route("/api/stats", d.stats),
        Route("/api/scopes/{scope}/processes", d.processes),
        Route("/api/scopes/{scope}/events", d.events),
        Route("/api/scopes/{scope}/runs", d.runs),
        Route("/api/scopes/{scope}/purge", d.purge, methods=["POST"]),
        Route(f"{process}/history", d.history),
        Route(process + "/runs/{run}/logs", d.logs),
        Route(f"{process}/launch", d.launch, methods=["POST"]),
        Route(f"{process}/stop", d.stop, methods=["POST"]),
        Route(f"{process}/dismiss", d.dismiss, methods=["POST"]),
        Route("/api/schedules", d.schedules),
        Route(f"{schedule}/pause", d.pause, methods=["POST"]),
        Route(f"{schedule}/unpause", d.unpause, methods=["POST"]),
        Route(f"{schedule}/trigger", d.trigger, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if d.follower is not None:
            d.follower.start()
        try:
            yield
        finally:
            if d.follower is not None:
                await run_in_threadpool(d.follower.stop)

    return guarded(Starlette(routes=routes, lifespan=lifespan), bound_host, d.guard)
