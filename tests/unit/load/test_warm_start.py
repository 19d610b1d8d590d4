"""The class admin mode's waiting neo4j-admin JVM runs, compiled once per source and JDK."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

from bulk360.load.admin.warm_start import MAIN_CLASS, warm_start_jar

JAVA = shutil.which("java")


def test_a_java_without_a_javac_beside_it_gets_no_jar(tmp_path: Path) -> None:
    runtime = tmp_path / "jre" / "bin"
    runtime.mkdir(parents=True)
    (runtime / "java").write_text("#!/bin/sh\n")
    (runtime / "java").chmod(0o755)
    assert warm_start_jar(str(runtime / "java"), tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


def test_the_jar_is_compiled_once_and_its_class_waits_for_its_input(tmp_path: Path) -> None:
    assert JAVA is not None, "a JDK on the path (Neo4j's needs one)"
    jar = warm_start_jar(JAVA, tmp_path)
    assert jar is not None and jar.parent == tmp_path
    assert zipfile.ZipFile(jar).namelist() == [f"{MAIN_CLASS}.class"]
    built = jar.stat().st_mtime_ns
    assert warm_start_jar(JAVA, tmp_path) == jar and jar.stat().st_mtime_ns == built
    assert [p.name for p in tmp_path.iterdir()] == [jar.name]  # no compile folder left
    # Without Neo4j on its class path the warm-up fails quietly; no input: it exits with 0.
    env = {"NEO4J_HOME": str(tmp_path), "NEO4J_CONF": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ended = subprocess.run(
        [JAVA, "-cp", str(jar), MAIN_CLASS], input=b"", capture_output=True, env=env, timeout=60
    )
    assert (ended.returncode, ended.stdout, ended.stderr) == (0, b"", b"")
