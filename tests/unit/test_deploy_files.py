"""Deployment files work with the code they deploy: Dockerfile, .dockerignore, docker-compose.yml and
.env.example.

Nothing here builds an image or starts a container. What is checked is what would break a deployment:
a setting documented but never read (or read but undocumented), a compose variable that is no setting,
a command the CLI does not have, an entry point that does not start, data outside the volume, a file
the image needs but the build context drops, a secret the build context keeps. Values that are a
matter of taste (restart policy, health-check intervals) are not restated here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # types-PyYAML is not among the dev dependencies

from bot.__main__ import COMMANDS, build_parser
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

# Variables Compose itself reads (interpolation), not bot settings. Each must be explained in a
# comment in docker-compose.yml.
COMPOSE_ONLY_VARIABLES = {"LOCAL_MODEL", "POSTGRES_PASSWORD"}
OLLAMA_PORT = 11434  # where Ollama serves its OpenAI-compatible API (under /v1)
SETTING_VARIABLES = {name.upper() for name in Settings.model_fields}


# --- parsing helpers ---------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml must be a mapping with a `services` mapping"
    )
    return data


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` as a dict, whether written as a mapping or as a list of KEY=VALUE."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {key: value for key, value in pairs}
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def _as_argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _env_example_settings() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Z][A-Z0-9_]*)\s*=", line)
        if match:
            names.add(match.group(1))
    return names


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs with comments dropped and ``\\`` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a `\\` continuation"
    return instructions


def _dockerfile(keyword: str) -> list[str]:
    return [rest for kw, rest in _dockerfile_instructions() if kw == keyword]


def _exec_form(arguments: str) -> list[str]:
    """Parse a JSON-array (exec form) argument such as ``["dungeon-master", "health"]``."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _dockerfile("ENV"):
        words = shlex.split(rest)
        if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _dockerfile_volumes() -> list[str]:
    volumes: list[str] = []
    for rest in _dockerfile("VOLUME"):
        volumes.extend(_exec_form(rest) if rest.startswith("[") else shlex.split(rest))
    return volumes


def _copy_sources() -> list[str]:
    """Source paths of every ``COPY`` from the build context (``--from=`` copies are skipped)."""
    sources: list[str] = []
    for rest in _dockerfile("COPY"):
        words = _exec_form(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        assert len(paths) >= 2, f"COPY needs a source and a destination: COPY {rest}"
        sources.extend(paths[:-1])
    return sources


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def _packaged_top_level_dirs() -> set[str]:
    """Top-level directories holding the packages ``[tool.setuptools.packages.find]`` includes."""
    setuptools = _pyproject()["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    dirs = set()
    for pattern in patterns:
        top = pattern.split(".")[0].rstrip("*")
        assert top, f"cannot tell a top-level package from include pattern {pattern!r}"
        dirs.add(top)
    return dirs | set(setuptools.get("package-data", {}))


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on context-relative paths."""
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def _dockerignored(relative: str) -> bool:
    """True if Docker leaves ``relative`` out of the build context (a parent dir match counts too)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in _dockerignore_patterns():
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern[1:] if negate else pattern)
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def _healthcheck_argv(test: str | list[str]) -> list[str]:
    argv = _as_argv(test)
    if argv and argv[0] == "CMD-SHELL":
        return shlex.split(" ".join(argv[1:]))
    if argv and argv[0] == "CMD":
        return argv[1:]
    return argv


def _bot_services() -> dict[str, dict[str, Any]]:
    """The services that run the bot image (the ones built from this repository)."""
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _healthcheck_command(instruction: str) -> list[str]:
    """The command of a Dockerfile ``HEALTHCHECK [options] CMD ...`` instruction."""
    _options, found, command = instruction.partition("CMD")
    assert found, f"HEALTHCHECK without CMD: {instruction}"
    command = command.strip()
    return _exec_form(command) if command.startswith("[") else shlex.split(command)


def _console_script() -> tuple[str, str]:
    """The one console script ``(name, "module:function")`` from ``[project.scripts]``."""
    scripts = _pyproject()["project"]["scripts"]
    assert len(scripts) == 1, f"expected one console script, found {sorted(scripts)}"
    return next(iter(scripts.items()))


def _invocations() -> dict[str, list[str]]:
    """Every command line the deployment files run through the console script, by where it is:
    Dockerfile ENTRYPOINT + CMD, its HEALTHCHECK, and each bot service's command and health check."""
    script, _target = _console_script()
    (entrypoint,) = [_exec_form(rest) for rest in _dockerfile("ENTRYPOINT")]
    assert entrypoint == [script], f"ENTRYPOINT {entrypoint} should be the console script [{script!r}]"
    found = {"Dockerfile CMD": entrypoint + _exec_form(_dockerfile("CMD")[-1])}
    for instruction in _dockerfile("HEALTHCHECK"):
        found["Dockerfile HEALTHCHECK"] = _healthcheck_command(instruction)
    for name, service in _bot_services().items():
        if "command" in service:  # runs after the image's ENTRYPOINT
            found[f"service {name} command"] = entrypoint + _as_argv(service["command"])
        if "healthcheck" in service:
            found[f"service {name} healthcheck"] = _healthcheck_argv(service["healthcheck"]["test"])
    return found


# --- tests ---------------------------------------------------------------------------------------


def test_env_example_documents_exactly_the_settings_the_code_reads() -> None:
    documented = _env_example_settings()
    assert sorted(documented - SETTING_VARIABLES) == [], ".env.example sets variables bot.config.Settings never reads"
    assert sorted(SETTING_VARIABLES - documented) == [], "bot.config.Settings reads settings .env.example lacks"


@pytest.mark.usefixtures("no_settings_in_environ")
def test_env_example_values_are_the_defaults() -> None:
    """Copied to .env unchanged, the template loads and changes nothing: what it shows is what the bot
    does when a line is left alone."""
    from bot.config import load_settings

    assert load_settings(ENV_EXAMPLE) == load_settings(None)


def test_the_dockerignore_helper_understands_docker_patterns() -> None:
    """Guards the matcher the other .dockerignore tests rely on, so they cannot pass vacuously."""
    assert _glob_regex("data").match("data") and not _glob_regex("data").match("bot/data")
    assert _glob_regex("**/__pycache__").match("bot/game/__pycache__")
    assert _glob_regex("**/*.pyc").match("x.pyc") and _glob_regex("*.egg-info").match("a.egg-info")
    assert not _glob_regex("*.pyc").match("bot/x.pyc")


def test_every_compose_environment_key_is_a_setting() -> None:
    for name, service in _bot_services().items():
        for key in _environment(service):
            assert key in SETTING_VARIABLES, (
                f"service {name!r} sets {key}, which bot.config.Settings does not read (a typo, or a "
                "setting that does not exist)"
            )


def test_every_interpolated_variable_is_a_setting_or_a_documented_compose_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", body))
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", body))
    for variable in used:
        assert variable in SETTING_VARIABLES or variable in COMPOSE_ONLY_VARIABLES, (
            f"docker-compose.yml interpolates ${{{variable}}}, which is neither a setting nor a "
            f"documented compose-only variable {sorted(COMPOSE_ONLY_VARIABLES)}"
        )
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for variable in COMPOSE_ONLY_VARIABLES:
        assert re.search(rf"\b{variable}\b", comments), (
            f"compose-only variable {variable} must be explained in a comment in docker-compose.yml"
        )
        assert variable not in SETTING_VARIABLES, (
            f"{variable} is a bot setting now; drop it from COMPOSE_ONLY_VARIABLES"
        )


def test_the_console_script_is_the_cli_main() -> None:
    _script, target = _console_script()
    assert target == "bot.__main__:main"


def test_every_command_the_deployment_runs_is_a_cli_command() -> None:
    invocations = _invocations()
    script, _target = _console_script()
    assert {"Dockerfile CMD", "Dockerfile HEALTHCHECK"} <= set(invocations)
    assert {f"service {name} command" for name in _bot_services()} <= set(invocations)
    for where, argv in invocations.items():
        assert argv[0] == script, f"{where} runs {argv}, not the console script {script!r}"
        assert argv[1] in COMMANDS, f"{where} runs {argv[1]!r}; the CLI's commands are {COMMANDS}"
        build_parser().parse_args(argv[1:])  # options too: argparse exits on one it does not know
    health = [argv[1] for where, argv in invocations.items() if "HEALTHCHECK" in where or "healthcheck" in where]
    assert set(health) == {"health"}, f"health checks run {health}; the heartbeat check is `health`"
    runs = [argv[1] for where, argv in invocations.items() if where.endswith("command") or where.endswith("CMD")]
    assert set(runs) == {"run"}, f"the image and the bot services should run the bot (`run`), not {runs}"


def test_the_entry_point_starts_and_lists_the_cli_commands() -> None:
    """The ENTRYPOINT's console script, resolved through [project.scripts] and run with this venv's
    python as a subprocess: ``--help`` exits 0 and names every command."""
    _script, target = _console_script()
    module, function = target.split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    done = subprocess.run([sys.executable, "-c", code, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert command in done.stdout, f"`--help` does not list {command!r}:\n{done.stdout}"


def test_named_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount, not a named volume
            assert source in declared, f"service {name!r} mounts volume {source!r}, not declared under `volumes:`"


def test_data_dir_is_the_volume_in_the_image_and_every_bot_service() -> None:
    image_data_dir = _dockerfile_env().get("DATA_DIR")
    assert image_data_dir, "the Dockerfile should set ENV DATA_DIR"
    assert image_data_dir in _dockerfile_volumes(), (
        f"the Dockerfile's VOLUME {_dockerfile_volumes()} should be DATA_DIR ({image_data_dir})"
    )
    for name, service in _bot_services().items():
        data_dir = _environment(service).get("DATA_DIR", image_data_dir)
        assert data_dir == image_data_dir, (
            f"service {name!r} DATA_DIR is {data_dir!r}, the image's is {image_data_dir!r}"
        )
        targets = [
            v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in service.get("volumes") or []
        ]
        assert image_data_dir in targets, f"service {name!r} mounts nothing at DATA_DIR ({image_data_dir}): {targets}"


def test_the_local_model_service_points_the_bot_at_ollama() -> None:
    services = _services()
    assert not services["bot"].get("profiles"), "the default `bot` service must start without a profile"
    for name, service in _bot_services().items():  # two bots on one database would answer twice
        assert name == "bot" or service.get("profiles"), f"`docker compose up` would start {name!r} beside `bot`"
    local = services["bot-local"]
    env = _environment(local)
    url = env.get("OPENAI_BASE_URL") or ""
    match = re.fullmatch(r"http://([A-Za-z0-9_.-]+):(\d+)(/.*)", url)
    assert match, f"bot-local OPENAI_BASE_URL {url!r} should be http://<service>:<port>/v1"
    host, port, path = match.groups()
    assert host in services and services[host]["image"].startswith("ollama/"), (
        f"bot-local talks to {host!r}, not an Ollama service"
    )
    assert (int(port), path.rstrip("/")) == (OLLAMA_PORT, "/v1"), f"Ollama's OpenAI API is :{OLLAMA_PORT}/v1"
    assert env.get("OPENAI_API_KEY"), "bot-local needs a non-empty OPENAI_API_KEY (any value works for Ollama)"
    depends = local.get("depends_on") or {}
    assert isinstance(depends, dict) and depends.get(host, {}).get("condition") == "service_healthy", (
        f"bot-local should wait for a healthy {host} (depends_on.{host}.condition: service_healthy)"
    )
    assert services[host].get("healthcheck"), f"{host} needs a healthcheck for service_healthy to work"


def test_the_image_does_not_run_as_root() -> None:
    users = _dockerfile("USER")
    assert users, "the Dockerfile never switches away from root (no USER instruction)"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}, f"the final USER is {users[-1]!r}; the image must not run as root"
    runs = " ".join(_dockerfile("RUN"))
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(final)}\b", runs), f"no RUN creates the user {final!r}"


def test_every_copied_path_exists_and_every_package_is_copied() -> None:
    sources = _copy_sources()
    assert sources, "the Dockerfile copies nothing from the build context"
    copied = set()
    for source in sources:
        relative = source.rstrip("/") or "."
        assert (ROOT / relative).exists(), f"the Dockerfile copies {source!r}, which does not exist in the repo"
        assert relative == "." or not _dockerignored(relative), (
            f"the Dockerfile copies {source!r}, but .dockerignore leaves it out of the build context"
        )
        copied.add(relative)
    for package in sorted(_packaged_top_level_dirs()):
        assert (ROOT / package).is_dir(), f"pyproject packages {package!r}, which is not a directory"
        assert package in copied or "." in copied, (
            f"pyproject packages {package!r}, but the Dockerfile does not COPY it (copied: {sorted(copied)})"
        )
    for needed in ("pyproject.toml", _pyproject()["project"]["readme"]):
        assert needed in copied or "." in copied, f"`pip install .` needs {needed}, which is not copied"


@pytest.mark.parametrize("package", ["bot", "migrations"])
def test_package_data_reaches_the_build_context(package: str) -> None:
    """Globs such as bot/data/tiktoken/*.gz match real files that .dockerignore does not drop."""
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert package in package_data, f"pyproject has no package-data for {package!r}"
    for glob in package_data[package]:
        files = sorted((ROOT / package).glob(glob))
        assert files, f"package-data {package}/{glob} matches no file"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not _dockerignored(relative), f".dockerignore drops package data {relative}"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".env", ".venv", ".git", "data", "tests", "bench/results", "bot/__pycache__", "bot/x.pyc"):
        assert _dockerignored(path), f".dockerignore should exclude {path}"
    for path in ("bot/__init__.py", "cogs/__init__.py", "migrations/0001_initial.sql", "pyproject.toml", "README.md"):
        assert not _dockerignored(path), f".dockerignore must not exclude {path}"


def test_the_postgres_profile_wires_the_bot_to_its_database() -> None:
    services = _services()
    db, bot = services["postgres"], services["bot-postgres"]
    assert db["profiles"] == ["postgres"] == bot["profiles"]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy" and "healthcheck" in db
    env = _environment(db)
    url = _environment(bot)["DATABASE_URL"] or ""
    match = re.match(r"^postgresql://(\w+):\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/(\w+)$", url)
    assert match is not None, url
    assert (match.group(1), match.group(2)) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in db["volumes"])
