"""Deployment files stay in step with the code: Dockerfile, .dockerignore and docker-compose.yml.

Nothing here builds an image or starts a container. The files are parsed and checked against what
they depend on: the settings documented in ``.env.example`` (and declared in ``bot.config.Settings``),
the CLI's sub-commands (``bot.__main__.COMMANDS``), the console script and packages declared in
``pyproject.toml``, and the directories that exist in the repository.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.__main__ import COMMANDS
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

# Variables Compose itself reads (interpolation), not bot settings. Each must be explained in a
# comment in docker-compose.yml.
COMPOSE_ONLY_VARIABLES = {"LOCAL_MODEL"}

BOT_SERVICES = ("bot", "bot-local")
OLLAMA_PORT = 11434


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
    import json

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


# --- tests ---------------------------------------------------------------------------------------


def test_the_deployment_files_and_env_example_exist() -> None:
    for path in (DOCKERFILE, DOCKERIGNORE, COMPOSE, ENV_EXAMPLE):
        assert path.is_file(), f"{path.name} is missing from the repository root"


def test_the_dockerignore_helper_understands_docker_patterns() -> None:
    """Guards the matcher the other .dockerignore tests rely on, so they cannot pass vacuously."""
    assert _glob_regex("data").match("data") and not _glob_regex("data").match("bot/data")
    assert _glob_regex("**/__pycache__").match("bot/game/__pycache__")
    assert _glob_regex("**/*.pyc").match("x.pyc") and _glob_regex("*.egg-info").match("a.egg-info")
    assert not _glob_regex("*.pyc").match("bot/x.pyc")


def test_every_compose_environment_key_is_a_documented_setting() -> None:
    documented = _env_example_settings()
    fields = {name.upper() for name in Settings.model_fields}
    for name, service in _services().items():
        for key in _environment(service):
            assert key in documented or key in COMPOSE_ONLY_VARIABLES, (
                f"service {name!r} sets {key}, which is not in .env.example (a typo, or a new setting "
                "that .env.example should document)"
            )
            if key in documented:
                assert key in fields, f"service {name!r} sets {key}, which bot.config.Settings does not read"


def test_every_interpolated_variable_is_a_setting_or_a_documented_compose_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", body))
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", body))
    documented = _env_example_settings()
    for variable in used:
        assert variable in documented or variable in COMPOSE_ONLY_VARIABLES, (
            f"docker-compose.yml interpolates ${{{variable}}}, which is neither in .env.example nor a "
            f"documented compose-only variable {sorted(COMPOSE_ONLY_VARIABLES)}"
        )
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for variable in COMPOSE_ONLY_VARIABLES:
        assert re.search(rf"\b{variable}\b", comments), (
            f"compose-only variable {variable} must be explained in a comment in docker-compose.yml"
        )
        assert variable not in documented, f"{variable} is a bot setting now; drop it from COMPOSE_ONLY_VARIABLES"


def test_every_service_command_is_a_cli_sub_command() -> None:
    services = _services()
    for name in BOT_SERVICES:
        assert name in services, f"docker-compose.yml has no {name!r} service"
        command = services[name].get("command")
        assert command is not None, f"service {name!r} should say its command (`run`) explicitly"
        argv = _as_argv(command)
        assert argv and argv[0] in COMMANDS, (
            f"service {name!r} runs {argv}, but the CLI's sub-commands are {COMMANDS}"
        )
        assert argv[0] == "run", f"service {name!r} should run the bot (`run`), not {argv[0]!r}"


def test_bot_healthchecks_run_dungeon_master_health() -> None:
    assert "health" in COMMANDS, "bot.__main__.COMMANDS has no `health` sub-command for the health check"
    script = next(iter(_pyproject()["project"]["scripts"]))
    for name in BOT_SERVICES:
        healthcheck = _services()[name].get("healthcheck")
        assert healthcheck, f"service {name!r} has no healthcheck"
        argv = _healthcheck_argv(healthcheck["test"])
        assert argv[:2] == [script, "health"], (
            f"service {name!r} health check runs {argv}; it must run `{script} health`"
        )
        assert argv[1] in COMMANDS
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in healthcheck, f"service {name!r} healthcheck should set {key}"


def test_env_file_is_dot_env() -> None:
    for name in BOT_SERVICES:
        env_file = _services()[name].get("env_file")
        files = env_file if isinstance(env_file, list) else [env_file]
        paths = [f["path"] if isinstance(f, dict) else f for f in files]
        assert paths == [".env"], f"service {name!r} env_file is {env_file!r}; expected `.env`"
    assert ENV_EXAMPLE.is_file(), ".env.example (the template for .env) is missing"


def test_named_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount, not a named volume
            assert source in declared, f"service {name!r} mounts volume {source!r}, not declared under `volumes:`"
    assert {"dm-data", "ollama-models"} <= declared, f"declared volumes are {sorted(declared)}"


def test_data_dir_is_the_same_in_compose_and_the_dockerfile() -> None:
    image_data_dir = _dockerfile_env().get("DATA_DIR")
    assert image_data_dir, "the Dockerfile should set ENV DATA_DIR"
    assert image_data_dir in _dockerfile_volumes(), (
        f"the Dockerfile's VOLUME {_dockerfile_volumes()} should be DATA_DIR ({image_data_dir})"
    )
    for name in BOT_SERVICES:
        service = _services()[name]
        assert _environment(service).get("DATA_DIR") == image_data_dir, (
            f"service {name!r} DATA_DIR is {_environment(service).get('DATA_DIR')!r}, the image's is {image_data_dir!r}"
        )
        targets = [
            v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in service.get("volumes") or []
        ]
        assert image_data_dir in targets, f"service {name!r} mounts nothing at DATA_DIR ({image_data_dir}): {targets}"


def test_services_restart_unless_stopped() -> None:
    for name, service in _services().items():
        assert service.get("restart") == "unless-stopped", (
            f"service {name!r} restart is {service.get('restart')!r}; expected unless-stopped"
        )


def test_local_model_profile_points_the_bot_at_ollama() -> None:
    services = _services()
    assert "ollama" in services, "the local-model profile needs an `ollama` service"
    for name in ("ollama", "bot-local"):
        assert "local-model" in (services[name].get("profiles") or []), (
            f"service {name!r} should only start with --profile local-model"
        )
    assert not services["bot"].get("profiles"), "the default `bot` service must not need a profile"
    local = services["bot-local"]
    env = _environment(local)
    url = env.get("OPENAI_BASE_URL") or ""
    match = re.fullmatch(r"http://([A-Za-z0-9_.-]+):(\d+)(/.*)", url)
    assert match, f"bot-local OPENAI_BASE_URL {url!r} should be http://<service>:<port>/v1"
    host, port, path = match.groups()
    assert host == "ollama" and host in services, f"bot-local talks to {host!r}, not the ollama service"
    assert int(port) == OLLAMA_PORT, f"Ollama listens on {OLLAMA_PORT}, bot-local uses port {port}"
    assert path.rstrip("/") == "/v1", f"Ollama's OpenAI-compatible API is under /v1, not {path!r}"
    assert env.get("OPENAI_API_KEY"), "bot-local needs a non-empty OPENAI_API_KEY (any value works for Ollama)"
    depends = local.get("depends_on") or {}
    assert isinstance(depends, dict) and depends.get("ollama", {}).get("condition") == "service_healthy", (
        "bot-local should wait for a healthy ollama (depends_on.ollama.condition: service_healthy)"
    )
    assert services["ollama"].get("healthcheck"), "ollama needs a healthcheck for service_healthy to work"


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = _pyproject()["project"]["scripts"]
    entrypoints = _dockerfile("ENTRYPOINT")
    assert len(entrypoints) == 1, f"expected one ENTRYPOINT, found {entrypoints}"
    entrypoint = _exec_form(entrypoints[0])
    assert entrypoint[0] in scripts, (
        f"ENTRYPOINT {entrypoint} is not a console script from [project.scripts] {sorted(scripts)}"
    )
    assert scripts[entrypoint[0]] == "bot.__main__:main"
    cmd = _exec_form(_dockerfile("CMD")[-1])
    assert cmd and cmd[0] in COMMANDS, f"Dockerfile CMD {cmd} is not one of {COMMANDS}"
    health = _dockerfile("HEALTHCHECK")
    assert health, "the Dockerfile should declare a HEALTHCHECK"
    cmd_part = health[-1].split("CMD", 1)
    assert len(cmd_part) == 2, f"HEALTHCHECK without CMD: {health[-1]}"
    assert _exec_form(cmd_part[1].strip())[:2] == [entrypoint[0], "health"], (
        f"the image's HEALTHCHECK should run `{entrypoint[0]} health`: {health[-1]}"
    )


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = _dockerfile("USER")
    assert users, "the Dockerfile never switches away from root (no USER instruction)"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}, f"the final USER is {users[-1]!r}; the image must not run as root"
    runs = " ".join(_dockerfile("RUN"))
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(final)}\b", runs), f"no RUN creates the user {final!r}"


def test_dockerfile_installs_the_project_non_editably() -> None:
    runs = " ".join(_dockerfile("RUN"))
    assert re.search(r"pip install (?:--[\w-]+ )*\.(?:\s|$)", runs), "the Dockerfile should `pip install .`"
    assert not re.search(r"pip install[^&;]*\s(-e|--editable)\b", runs), "the image install must not be editable"


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
