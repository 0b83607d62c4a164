"""CI: run the image the Dockerfile built as an admin would, against the demo's emulators.

    python .ci/container_check.py IMAGE PODMAN-COMMAND...

The emulators run here; the container shares the host's network, reads its config from a
read-only mount at /etc/closedloop and its secrets from the environment, and keeps its store in
a volume. Checks: /healthz turns ok, the run on start succeeds and wrote to the CRM, SIGTERM
(`podman stop`) ends the container with exit code 0 and the "stopped" log line.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from connector.demo.emulators import TOKENS, start_demo
from connector.demo.synthetic import generate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(image: str, podman: list[str]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="closedloop-container-"))
    systems = start_demo(workdir / "config", "hubspot", generate(contacts=40, visits=400, deals=10))
    port = free_port()
    config = yaml.safe_load(systems.config_path.read_text())
    del config["secrets_file"]  # the container gets them as environment variables
    config["store"] = {"url": "sqlite:////var/lib/closedloop/closedloop.db"}
    config["service"] = {"host": "0.0.0.0", "port": port, "log_format": "json",
                         "jobs": [{"name": "hourly", "interval_minutes": 60,
                                   "run_on_start": True}]}  # fmt: skip
    systems.config_path.write_text(yaml.safe_dump(config))
    (workdir / "config" / "secrets.yaml").unlink()
    for path in [workdir, *workdir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the image's user is not root
    name = f"closedloop-ci-{port}"
    env = [arg for key, value in TOKENS.items() for arg in ("--env", f"{key}={value}")]
    run = [*podman, "run", "-d", "--name", name, "--network", "host", "--no-healthcheck",
           "-v", f"{workdir}:/etc/closedloop:ro", "-v", f"{name}:/var/lib/closedloop",
           *env, image]  # fmt: skip
    print("+", shlex.join(run[: -1 - len(env)]), "...", flush=True)
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)
    try:
        health: dict[str, object] = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:  # noqa: S310
                    health = json.loads(r.read())
            except OSError:
                health = {}
            last = health.get("last_run") or {}
            if isinstance(last, dict) and last.get("status") not in (None, "running"):
                break
            running = subprocess.run([*podman, "inspect", name, "--format", "{{.State.Running}}"],
                                     capture_output=True, text=True).stdout.strip()  # fmt: skip
            if running != "true":
                break
            time.sleep(1)
        print("healthz:", json.dumps(health), flush=True)
        written = len(systems.emulators["hubspot"].requests("POST", "/batch/update"))
        stop = subprocess.run([*podman, "stop", "-t", "60", name], capture_output=True, text=True)
        inspect = [*podman, "inspect", name, "--format", "{{.State.ExitCode}}"]
        code = subprocess.run(inspect, capture_output=True, text=True).stdout.strip()
        logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True).stderr
        messages = [json.loads(line)["message"] for line in logs.splitlines() if line[:1] == "{"]
        print("\n".join(messages[-8:]), flush=True)
        problems = []
        if health.get("status") != "ok" or (health.get("last_run") or {}).get("status") != (
            "succeeded"
        ):
            problems.append(f"the run on start did not succeed: {health}")
        if not written:
            problems.append("no write reached the CRM emulator")
        if stop.returncode != 0 or code != "0" or "stopped" not in messages:
            problems.append(f"SIGTERM did not stop it cleanly (exit code {code}): {stop.stderr}")
        leaked = [t for t in TOKENS.values() if t in logs]
        if leaked:
            problems.append(f"secrets in the container's log: {len(leaked)}")
        for problem in problems:
            print("container check failed:", problem, file=sys.stderr)
        if problems:
            print(logs[-3000:], file=sys.stderr)
        return 1 if problems else 0
    finally:
        subprocess.run([*podman, "rm", "-f", name], capture_output=True)
        subprocess.run([*podman, "volume", "rm", "-f", name], capture_output=True)
        systems.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
