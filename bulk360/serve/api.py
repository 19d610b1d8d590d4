"""``bulk360 serve``: the HTTP API in front of the graph and the control database (FastAPI).

``GET /`` and the health endpoints for probes (``/health/live``: the process answers;
``/health`` and ``/health/ready``: the control database and the Neo4j database both answer a
query), ``GET /runs`` and ``GET /runs/{id}`` from the audit tables, and
``GET /customers/{id}/recommendations`` from the lists ``bulk360 recommend`` stored, with a live
parameterized Cypher query when no stored list holds the customer, and
``GET /products/{id}/similar``: the nearest products by node2vec vector that a recommendation run
stored, else the products most often bought in the same orders (live Cypher). Every list served
has a recommendation id, and the running experiment's arm chooses its strategy when none is
asked for (``GET /experiments/{name}/customers/{id}/recommendations`` serves a named
experiment's arm); ``POST /events`` records what the customer did with a list (one schema per
kind of event), ``GET /experiments/{name}`` reports the arms. The OpenAPI document
(``/openapi.json``, ``/docs``) declares every answer each endpoint gives. With
``BULK360_API_TOKEN`` set, every endpoint but ``/``, the health endpoints and the documentation
requires ``Authorization: Bearer <token>``. Errors are JSON; nothing returned names a password.

The app is assembled here; what it takes and answers is in :mod:`.models`, what a worker shares
in :mod:`.resources`, the token in :mod:`.auth`, each group of endpoints in :mod:`.routes`, and
the lists it reads in :mod:`bulk360.apps.lists`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bulk360.apps.strategies import RecommendOptions
from bulk360.serve.auth import guard_for
from bulk360.serve.resources import Serving
from bulk360.serve.routes.experiments import experiment_routes
from bulk360.serve.routes.health import health_routes
from bulk360.serve.routes.history import history_routes
from bulk360.serve.routes.metrics import metrics_routes
from bulk360.serve.routes.recommendations import recommendation_routes
from bulk360.serve.ui import ui_routes
from bulk360.settings import Settings, load_settings
from bulk360.version import __version__

__all__ = ["app_from_environment", "create_app"]


def create_app(settings: Settings, options: RecommendOptions | None = None) -> FastAPI:
    """The API for ``settings``; Neo4j and the control database may be down at start (the
    health endpoints say so)."""
    model = options or RecommendOptions()
    shared: dict[str, Serving] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        shared["serving"] = serving = Serving(settings, model)
        serving.open()
        try:
            yield
        finally:
            serving.close()

    app = FastAPI(title="bulk360", version=__version__, lifespan=lifespan)

    guard = guard_for(settings.api_token)
    health_routes(app, settings, shared)
    history_routes(app, settings, guard)
    metrics_routes(app, settings, guard)
    ui_routes(app, settings)
    recommendation_routes(app, shared, guard)
    experiment_routes(app, settings, shared, guard)
    return app


def app_from_environment() -> FastAPI:
    """The API for the settings of the environment (``BULK360_ENV_FILE`` names the file):
    what each ``bulk360 serve --workers N`` worker process serves."""
    return create_app(load_settings())
