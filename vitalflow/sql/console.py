"""The SQL web console: FastAPI serving one plain HTML page and the HTTP API behind it
(POST /api/query and friends, described at /docs and /openapi.json)."""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from vitalflow.monitoring.exposition import instrument
from vitalflow.config import Settings
from vitalflow.sql.catalog import readable
from vitalflow.sql.duck import EngineError, QueryTimeout
from vitalflow.sql.examples import EXAMPLES
from vitalflow.sql.policy import QueryInvalid, QueryRefused
from vitalflow.sql.service import SqlService
from vitalflow.sql.users import UserStore

STATIC = Path(__file__).with_name("static")
COOKIE = "vitalflow_sql_session"
SESSION_SECONDS = 8 * 3600
KEPT_RESULTS = 32  # recent results kept for paging and downloads


class Login(BaseModel):
    user: str
    password: str


class QueryRequest(BaseModel):
    sql: str = Field(description="One SELECT over the catalog's tables (layer.table).")
    engine: str | None = Field(None, description="duckdb or trino (default: sql.engine).")
    dialect: str | None = Field(None, description="trino or duckdb (default: sql.dialect).")


class QueryResponse(BaseModel):
    query_id: str = Field(description="Id for /api/results/{query_id}.csv or .parquet.")
    columns: list[str]
    types: list[str]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool = Field(description="True when the role's row limit cut the result.")
    duration_ms: float
    engine: str


class SavedQuery(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    sql: str


class Sessions:
    """Login sessions in memory: random ids in an HttpOnly cookie, expiring after 8 hours."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def new(self, user: str, role: str) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session] = (user, role, time.time() + SESSION_SECONDS)
        return session

    def get(self, session: str | None) -> tuple[str, str] | None:
        with self._lock:
            found = self._sessions.get(session or "")
            if found and found[2] > time.time():
                return found[0], found[1]
            self._sessions.pop(session or "", None)
            return None

    def drop(self, session: str | None) -> None:
        with self._lock:
            self._sessions.pop(session or "", None)


class SavedQueries:
    """Saved queries per user in one JSON file (mode 600) under paths.home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def all(self) -> dict[str, dict[str, str]]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def of(self, user: str) -> dict[str, str]:
        return self.all().get(user, {})

    def change(self, user: str, name: str, sql: str | None) -> None:
        with self._lock:
            everything = self.all()
            mine = everything.setdefault(user, {})
            if sql is None:
                mine.pop(name, None)
            else:
                mine[name] = sql
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.touch(mode=0o600)
            partial.write_text(json.dumps(everything, indent=1))
            partial.replace(self.path)


def current_user(request: Request) -> tuple[str, str]:
    """(user, role) from the session cookie or a bearer token; 401 otherwise."""
    header = request.headers.get("authorization", "")
    state = request.app.state
    found = (state.users.by_token(header[7:]) if header.lower().startswith("bearer ")
             else state.sessions.get(request.cookies.get(COOKIE)))
    if found is None:
        raise HTTPException(401, "log in first (POST /api/login) or send a bearer token")
    return found


User = Annotated[tuple[str, str], Depends(current_user)]


def create_app(settings: Settings, profile: str | None = None,
               service: SqlService | None = None) -> FastAPI:
    service = service or SqlService(settings, profile)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    app = FastAPI(title="vitalflow SQL console", lifespan=lifespan, version="1",
                  description="Read-only SQL over the refined and derived layers. Log in with "
                  "POST /api/login (cookie) or send `Authorization: Bearer <token>` "
                  "(`vitalflow sql-users token NAME`).")
    instrument(app, "sql_console")  # /metrics for Prometheus (docs/monitoring.md)
    users = UserStore.from_settings(settings)
    sessions = Sessions()
    saved = SavedQueries(settings.paths.root / "sql" / "saved_queries.json")
    results: OrderedDict[str, tuple[str, pa.Table]] = OrderedDict()
    results_lock = threading.Lock()

    app.state.users, app.state.sessions = users, sessions
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "console.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post("/api/login")
    def login(body: Login, response: Response) -> dict:
        found = users.login(body.user, body.password)
        if found is None:
            raise HTTPException(401, "unknown user or wrong password")
        response.set_cookie(COOKIE, sessions.new(*found), httponly=True, samesite="strict",
                            max_age=SESSION_SECONDS)
        return {"user": found[0], "role": found[1]}

    @app.post("/api/logout")
    def logout(request: Request, response: Response) -> dict:
        sessions.drop(request.cookies.get(COOKIE))
        response.delete_cookie(COOKIE)
        return {}

    @app.get("/api/me")
    def me(user: User) -> dict:
        return {"user": user[0], "role": user[1], "engine": settings.sql.engine,
                "profile": service.profile}

    @app.get("/api/tables")
    def tables(user: User) -> list[dict]:
        """The tables this user may read, with table and column descriptions."""
        return [entry.as_dict() for entry in readable(user[1]).values()]

    @app.get("/api/examples")
    def examples(user: User) -> list[dict]:
        return [{"name": e.name, "title": e.title, "sql": e.sql} for e in EXAMPLES]

    @app.post("/api/query", response_model=QueryResponse,
              responses={400: {"description": "not valid SQL"},
                         403: {"description": "refused by the policy (the message says why)"},
                         408: {"description": "statement timeout of the role"},
                         422: {"description": "the engine failed"}})
    def query(body: QueryRequest, user: User) -> QueryResponse:
        """Run one read-only query with the user's role; rows come back as JSON objects."""
        try:
            result = service.query(body.sql, user[0], user[1], body.engine, body.dialect)
        except QueryRefused as exc:
            raise HTTPException(403, str(exc)) from None
        except QueryInvalid as exc:
            raise HTTPException(400, str(exc)) from None
        except QueryTimeout as exc:
            raise HTTPException(408, str(exc)) from None
        except EngineError as exc:
            raise HTTPException(422, str(exc)) from None
        query_id = uuid.uuid4().hex
        with results_lock:
            results[query_id] = (user[0], result.table)
            while len(results) > KEPT_RESULTS:
                results.popitem(last=False)
        table = result.table
        return QueryResponse(
            query_id=query_id, columns=table.column_names,
            types=[str(t) for t in table.schema.types],
            rows=json.loads(json.dumps(table.to_pylist(), default=str)),
            row_count=table.num_rows, truncated=result.truncated,
            duration_ms=result.duration_ms, engine=result.engine)

    @app.get("/api/results/{query_id}.{suffix}")
    def download(query_id: str, suffix: str, user: User) -> Response:
        """A kept result as CSV or Parquet."""
        with results_lock:
            owner, table = results.get(query_id, (None, None))
        if table is None or owner != user[0]:
            raise HTTPException(404, "no such result (results are kept for the last "
                                f"{KEPT_RESULTS} queries)")
        if suffix == "csv":
            from vitalflow.sql.cli import render

            body, media = render(table, "csv").encode(), "text/csv"
        elif suffix == "parquet":
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            body, media = buffer.getvalue(), "application/vnd.apache.parquet"
        else:
            raise HTTPException(404, "results download as .csv or .parquet")
        return Response(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="result-{query_id[:8]}.{suffix}"'})

    @app.get("/api/history")
    def history(user: User) -> list[dict]:
        """This user's latest queries from the query log, newest first."""
        return json.loads(json.dumps(service.log.recent(user[0], 50), default=str))

    @app.get("/api/saved")
    def saved_list(user: User) -> dict[str, str]:
        return saved.of(user[0])

    @app.post("/api/saved")
    def saved_add(body: SavedQuery, user: User) -> dict[str, str]:
        saved.change(user[0], body.name, body.sql)
        return saved.of(user[0])

    @app.delete("/api/saved/{name}")
    def saved_delete(name: str, user: User) -> dict[str, str]:
        saved.change(user[0], name, None)
        return saved.of(user[0])

    return app
