"""``bulk360 serve`` in a child process, and schemathesis against it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bulk360.settings import Settings
from tests.helpers.cli import cli_env

__all__ = ["free_port", "fuzz_api", "serving"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(settings: Settings, *args: str, **env: str) -> Iterator[str]:
    """``bulk360 serve`` in a child process on a free port; yields its base URL.

    ``args`` go to ``serve``, ``env`` into its environment (``NEO4J_PASSWORD=...``). What the
    server logged must never hold the control database's password.
    """
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "serve.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "bulk360", "serve", "--port", str(port), *args],
                env={**cli_env(settings, settings.import_dir), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        httpx.get(url + "/", timeout=2)
                        break
                    except httpx.TransportError:
                        assert server.poll() is None, log_path.read_text()
                        assert time.monotonic() < deadline, "the API did not start within 60 s"
                        time.sleep(0.3)
                yield url
            finally:
                server.terminate()
                server.wait(timeout=30)
        assert settings.etl_db_password not in log_path.read_text()


def fuzz_api(
    url: str,
    folder: Path,
    max_examples: int,
    headers: dict[str, str] | None = None,
    exclude: tuple[str, ...] = (),
    phases: tuple[str, ...] = (),
    **values: list[Any],
) -> str:
    """Schemathesis against ``url`` with all its checks but ``exclude``; returns its output,
    fails on any failure. ``phases`` narrows the run to those of Schemathesis' phases (all
    when empty).

    ``values`` are real parameter values (``customer_id=["5"]``) that half of the generated
    cases use, so that the fuzzer reaches past the 404s. The seed is fixed, so that CI is
    reproducible. Its working files go to ``folder``.
    """
    lines = ["seed = 360"]
    if headers:
        lines.append(
            f"headers = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in headers.items())} }}"
        )
    lines += ["[generation]", f"max-examples = {max_examples}"]
    for name, chosen in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(chosen)}"]
    if values:
        lines.append("[parameters]")
        lines += [f'{name} = {{ dictionary = "{name}", probability = 0.5 }}' for name in values]
    (folder / "schemathesis.toml").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json"),
            *("--checks", "all", "--no-color"),
            *(("--exclude-checks", ",".join(exclude)) if exclude else ()),
            *(("--phases", ",".join(phases)) if phases else ()),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout
