"""Starts and stops the local stack under one supervisord (a well-kept process supervisor:
restarts, log files, process groups), and waits for each component to be ready.

Infrastructure programs live in the main config; services add one file each under
`supervisor.d/`, so `up --infra-only` (what the tests use) never touches running services.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from cex.stack.components import Component, Program, StackError, infrastructure
from cex.stack.settings import StackSettings

# Services register themselves here as later issues add them: (name, factory) pairs that
# return the supervisord Programs to run and the endpoints they expose.
ServiceSpec = tuple[list[Program], dict[str, str]]


def _service_specs(settings: StackSettings) -> ServiceSpec:
    from cex.stack import programs

    return programs.programs(settings)


def up(infra_only: bool = False, settings: StackSettings | None = None) -> dict[str, str]:
    s = settings or StackSettings()
    components = infrastructure(s)
    for component in components:
        component.install()
    s.log_dir.mkdir(parents=True, exist_ok=True)
    (s.root / "supervisor.d").mkdir(parents=True, exist_ok=True)

    running = _running_programs(s)
    for component in components:
        if (running or {}).get(component.name) != "RUNNING":
            _ensure_ports_free(component.name, component.ports, s)
        component.prepare()
    _write_main_config(s, [c.program() for c in components])
    if running is None:
        _start_supervisord(s)
    else:
        _ctl(s, "update")
    _wait_ready(s, components)

    endpoints = {c.name: c.endpoint() for c in components}
    if not infra_only:
        programs, service_endpoints = _service_specs(s)
        for program in programs:
            (s.root / "supervisor.d" / f"{program.name}.conf").write_text(
                _program_section(program, s)
            )
        _ctl(s, "update")
        endpoints |= service_endpoints
        _wait_programs_running(s, [p.name for p in programs])
        _wait_services_ready(s, service_endpoints)
    _write_endpoints(s, endpoints)
    return endpoints


def down(settings: StackSettings | None = None) -> None:
    s = settings or StackSettings()
    pid = _supervisord_pid(s)
    if pid is not None:
        _ctl(s, "shutdown")
        deadline = time.monotonic() + 120
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise StackError(f"supervisord (pid {pid}) did not stop within 120 s")
            time.sleep(0.2)
    s.endpoints_file.unlink(missing_ok=True)
    for program_file in (s.root / "supervisor.d").glob("*.conf"):
        program_file.unlink()
    leftovers = [c.name for c in infrastructure(s) for port in c.ports if _port_open(s.host, port)]
    if leftovers:
        raise StackError(f"ports of {', '.join(leftovers)} still open after shutdown")


def status(settings: StackSettings | None = None) -> dict[str, object]:
    s = settings or StackSettings()
    running = _running_programs(s)
    endpoints = json.loads(s.endpoints_file.read_text()) if s.endpoints_file.exists() else {}
    return {"supervisord": running is not None, "programs": running or {}, "endpoints": endpoints}


def program_pids(settings: StackSettings | None = None) -> dict[str, int]:
    """Program name → pid of each running program of our supervisord (empty when it is not
    running): what a benchmark samples to say which process spent the CPU."""
    s = settings or StackSettings()
    if _running_programs(s) is None:
        return {}
    return {info["name"]: int(info["pid"]) for info in _rpc_call(s, "getAllProcessInfo")
            if info["pid"]}  # fmt: skip


def infrastructure_ready(settings: StackSettings | None = None) -> bool:
    """True when every infrastructure component answers, whoever started it."""
    s = settings or StackSettings()
    return all(c.is_ready() for c in infrastructure(s))


# --- supervisord plumbing -------------------------------------------------------------


def _socket_path(s: StackSettings) -> Path:
    return s.root / "supervisor.sock"


def _config_path(s: StackSettings) -> Path:
    return s.root / "supervisord.conf"


def _write_main_config(s: StackSettings, programs: Iterable[Program]) -> None:
    sections = [
        f"[unix_http_server]\nfile={_socket_path(s)}\nchmod=0700\n",
        f"[supervisord]\nlogfile={s.log_dir / 'supervisord.log'}\n"
        f"pidfile={s.root / 'supervisord.pid'}\ndirectory={Path.cwd()}\n"
        "childlogdir={0}\nloglevel=info\nminfds=4096\n".format(s.log_dir),
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{_socket_path(s)}\n",
        *(_program_section(p, s) for p in programs),
        f"[include]\nfiles = {s.root / 'supervisor.d'}/*.conf\n",
    ]
    _config_path(s).write_text("\n".join(sections))


def _program_section(p: Program, s: StackSettings) -> str:
    # supervisord expands %(...)s in values: escape literal percent signs.
    command = " ".join(shlex.quote(arg) for arg in p.command).replace("%", "%%")
    lines = [
        f"[program:{p.name}]",
        f"command={command}",
        "autostart=true",
        "autorestart=unexpected",
        "startsecs=2",
        "startretries=3",
        f"stopsignal={p.stop_signal}",
        f"stopwaitsecs={p.stop_wait_s}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={s.log_dir / (p.name + '.log')}",
        "stdout_logfile_maxbytes=50MB",
        "stdout_logfile_backups=2",
    ]
    if p.user:
        lines.append(f"user={p.user}")
    if p.environment:
        env = ",".join(f'{k}="{v}"' for k, v in sorted(p.environment.items()))
        lines.append(f"environment={env.replace('%', '%%')}")
    return "\n".join(lines) + "\n"


def _start_supervisord(s: StackSettings) -> None:
    supervisord = Path(sys.executable).with_name("supervisord")
    result = subprocess.run(
        [str(supervisord), "-c", str(_config_path(s))],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"supervisord failed to start:\n{result.stdout}{result.stderr}")
    deadline = time.monotonic() + 15
    while _running_programs(s) is None:
        if time.monotonic() > deadline:
            raise StackError(f"supervisord did not answer; see {s.log_dir / 'supervisord.log'}")
        time.sleep(0.1)


def _rpc_call(s: StackSettings, method: str) -> Any:
    """One XML-RPC call to our supervisord over its unix socket; the socket is closed after."""
    transport = SupervisorTransport(None, None, f"unix://{_socket_path(s)}")
    try:
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return getattr(proxy.supervisor, method)()
    finally:
        transport.close()


def _running_programs(s: StackSettings) -> dict[str, str] | None:
    """Program name → supervisord state, or None when our supervisord is not running."""
    if not _socket_path(s).exists():
        return None
    try:
        infos = _rpc_call(s, "getAllProcessInfo")
    except (OSError, xmlrpc.client.Fault):
        return None
    return {info["name"]: info["statename"] for info in infos}


def _supervisord_pid(s: StackSettings) -> int | None:
    if _running_programs(s) is None:
        return None
    return int(_rpc_call(s, "getPID"))


def _ctl(s: StackSettings, *args: str) -> None:
    supervisorctl = Path(sys.executable).with_name("supervisorctl")
    result = subprocess.run(
        [str(supervisorctl), "-c", str(_config_path(s)), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    # supervisorctl exits non-zero for benign "already started" answers; real failures
    # show up as programs that never become RUNNING, which the waits below report.
    if result.returncode not in (0, 1, 2, 3, 4, 5, 6, 7):
        raise StackError(f"supervisorctl {' '.join(args)}: {result.stdout}{result.stderr}")


def _wait_ready(s: StackSettings, components: list[Component]) -> None:
    deadline = time.monotonic() + s.ready_timeout_s
    pending = list(components)
    while pending:
        states = _running_programs(s) or {}
        for component in list(pending):
            state = states.get(component.name)
            # BACKOFF means supervisord is retrying: keep waiting until the deadline.
            if state in ("FATAL", "EXITED", "STOPPED"):
                raise StackError(_failure_message(s, component.name, state))
            if component.is_ready():
                pending.remove(component)
        if pending and time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            raise StackError(
                f"{names} not ready after {s.ready_timeout_s:.0f} s\n"
                + "\n".join(_failure_message(s, c.name, states.get(c.name)) for c in pending)
            )
        if pending:
            time.sleep(0.5)


def _wait_programs_running(s: StackSettings, names: list[str]) -> None:
    deadline = time.monotonic() + s.ready_timeout_s
    while True:
        states = _running_programs(s) or {}
        failed = [n for n in names if states.get(n) in ("FATAL", "EXITED", "STOPPED")]
        if failed:
            raise StackError("\n".join(_failure_message(s, n, states.get(n)) for n in failed))
        if all(states.get(n) == "RUNNING" for n in names):
            return
        if time.monotonic() > deadline:
            raise StackError(f"services not running after {s.ready_timeout_s:.0f} s: {states}")
        time.sleep(0.3)


def _wait_services_ready(s: StackSettings, endpoints: dict[str, str]) -> None:
    """Every service answers 200 on /readyz (engines: after their recovery), the web UI on
    its /healthz."""
    probes = {
        name.removesuffix("-metrics"): url.removesuffix("/metrics") + "/readyz"
        for name, url in endpoints.items()
        if url.endswith("/metrics")
    }
    if "web" in endpoints:
        probes["web"] = endpoints["web"] + "/healthz"
    deadline = time.monotonic() + s.ready_timeout_s
    while probes:
        for name, url in list(probes.items()):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        del probes[name]
            except OSError:
                pass
        if probes and time.monotonic() > deadline:
            raise StackError("\n".join(_failure_message(s, name, "not ready") for name in probes))
        if probes:
            time.sleep(0.3)


def _failure_message(s: StackSettings, name: str, state: str | None) -> str:
    log = s.log_dir / f"{name}.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:]) if log.exists() else ""
    return f"{name} failed to start (state {state}); last lines of {log}:\n{tail}"


def _ensure_ports_free(name: str, ports: Iterable[int], s: StackSettings) -> None:
    for port in ports:
        if _port_open(s.host, port) or not _port_bindable(s.host, port):
            raise StackError(
                f"{name}: port {s.host}:{port} is already taken by another process "
                f"({_port_owner(port)}). Stop it, or choose another port with "
                f"CEX_STACK_{name.upper()}_PORT."
            )


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _port_bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _port_owner(port: int) -> str:
    result = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown process"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write_endpoints(s: StackSettings, endpoints: dict[str, str]) -> None:
    s.endpoints_file.write_text(json.dumps(endpoints, indent=2, sort_keys=True) + "\n")
