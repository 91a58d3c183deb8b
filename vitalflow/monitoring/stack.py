"""The local monitoring stack: Debian's Prometheus, Alertmanager and Pushgateway on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

import yaml

from vitalflow.monitoring.processes import HOST, Process, choose_ports, write_private
from vitalflow.monitoring.run_metrics import STATE_DIR
from vitalflow.services import ServiceError

INFRA = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager",
            "pushgateway": "prometheus-pushgateway"}
SMTP_PASSWORD_ENV = "VITALFLOW_SMTP_PASSWORD"


def binary(name: str) -> str:
    found = shutil.which(BINARIES[name])
    if not found:
        raise ServiceError(f"the monitoring stack needs {BINARIES[name]}: apt-get install "
                           "prometheus prometheus-alertmanager prometheus-pushgateway "
                           "(make install does it when run as root)")
    return found


def render_rules(source: Path, target: Path, rule_for: str | None = None,
                 rule_range: str | None = None) -> None:
    """Copy the rule files; a test copy replaces every `for:` and range window (e.g. [1h])
    with short ones so alerts fire in seconds."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in target.glob("*.yml"):
        stale.unlink()
    for path in sorted(source.glob("*.yml")):
        text = path.read_text()
        if rule_for:
            text = re.sub(r"(?m)^(\s+for:) \S+$", rf"\1 {rule_for}", text)
        if rule_range:
            text = re.sub(r"\[\d+[smhdwy]\]", f"[{rule_range}]", text)
        write_private(target / path.name, text)


class MonitoringStack:
    """Prometheus, Alertmanager and Pushgateway as this project's processes, state under
    paths.home/monitoring. rule_for / rule_range give a test copy of the rules."""

    def __init__(self, settings, rule_for: str | None = None, rule_range: str | None = None):
        self.settings = settings
        self.folder = settings.paths.root / STATE_DIR
        self.rule_for, self.rule_range = rule_for, rule_range
        self.processes = {name: Process(name, self.folder) for name in BINARIES}

    @property
    def portfile(self) -> Path:
        return self.folder / "ports.json"

    def ports(self) -> dict[str, int]:
        return json.loads(self.portfile.read_text()) if self.portfile.exists() else {}

    def url(self, name: str = "prometheus") -> str:
        return f"http://{HOST}:{self.ports()[name]}"

    def status(self) -> dict:
        ports = self.ports()
        return {name: {"running": process.pid() is not None, "pid": process.pid(),
                       "url": f"http://{HOST}:{ports[name]}" if name in ports else None}
                for name, process in self.processes.items()}

    def up(self, timeout: float = 60) -> str:
        """Start what is not running (configs rendered anew, a running Prometheus and
        Alertmanager reload them) and return Prometheus' URL."""
        commands = {name: [binary(name)] for name in BINARIES}
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        m = self.settings.monitoring
        if not any(p.pid() for p in self.processes.values()):
            write_private(self.portfile, json.dumps(choose_ports(
                {"prometheus": m.prometheus_port, "alertmanager": m.alertmanager_port,
                 "pushgateway": m.pushgateway_port}, self.ports())))
        self.render()
        started = {}
        for name, process in self.processes.items():
            if process.pid() is None:
                started[name] = process.start(commands[name] + self._arguments(name))
            else:
                self._reload(name)
        for name, proc in started.items():
            self.processes[name].wait_ready(proc, f"{self.url(name)}/-/ready", timeout)
        return self.url()

    def down(self) -> bool:
        """Stop all three; False when none was running."""
        stopped = [process.stop() for process in self.processes.values()]  # stop every one
        return any(stopped)

    def render(self) -> None:
        """The configs under the state folder, from infra/monitoring/ and the settings."""
        render_rules(INFRA / "rules", self.folder / "rules", self.rule_for, self.rule_range)
        write_private(self.folder / "prometheus.yml", yaml.safe_dump(self.prometheus_config(),
                                                                     sort_keys=False))
        write_private(self.folder / "alertmanager.yml", yaml.safe_dump(
            self.alertmanager_config(), sort_keys=False))

    def prometheus_config(self) -> dict:
        m, ports = self.settings.monitoring, self.ports()
        config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": m.scrape_interval,
                            "evaluation_interval": m.evaluation_interval}
        config["alerting"]["alertmanagers"][0]["static_configs"] = [
            {"targets": [f"{HOST}:{ports['alertmanager']}"]}]
        jobs = []
        for job in config["scrape_configs"]:
            if job["job_name"] in ports:
                job["static_configs"] = [{"targets": [f"{HOST}:{ports[job['job_name']]}"]}]
            else:
                job["static_configs"] = [{"targets": [where], "labels": {"service": name}}
                                         for name, where in m.scrape_targets.items()]
            if job["static_configs"]:
                jobs.append(job)
        config["scrape_configs"] = jobs
        return config

    def alertmanager_config(self) -> dict:
        a = self.settings.alerting
        config = yaml.safe_load((INFRA / "alertmanager.yml").read_text())
        config["global"]["resolve_timeout"] = a.resolve_timeout
        config["route"].update(group_wait=a.group_wait, group_interval=a.group_interval,
                               repeat_interval=a.repeat_interval)
        receiver = config["receivers"][0]
        receiver["webhook_configs"][0]["url"] = a.webhook_url
        if a.email_to and a.smarthost:
            email = {"to": a.email_to, "from": a.email_from, "smarthost": a.smarthost,
                     "send_resolved": True}
            if os.environ.get(SMTP_PASSWORD_ENV):
                email |= {"auth_username": a.email_from,
                          "auth_password": os.environ[SMTP_PASSWORD_ENV]}
            receiver["email_configs"] = [email]
        return config

    def _arguments(self, name: str) -> list[str]:
        ports, folder = self.ports(), self.folder
        listen = f"--web.listen-address={HOST}:{ports[name]}"
        if name == "prometheus":
            return [f"--config.file={folder / 'prometheus.yml'}", listen,
                    f"--storage.tsdb.path={folder / 'prometheus-data'}",
                    "--storage.tsdb.retention.time=30d", "--web.enable-lifecycle"]
        if name == "alertmanager":
            # An empty cluster address: a single instance, no gossip port on 0.0.0.0.
            return [f"--config.file={folder / 'alertmanager.yml'}", listen,
                    f"--storage.path={folder / 'alertmanager-data'}",
                    "--cluster.listen-address="]
        return [listen, f"--persistence.file={folder / 'pushgateway.data'}",
                "--persistence.interval=1m"]

    def _reload(self, name: str) -> None:
        if name == "pushgateway":
            return
        request = urllib.request.Request(f"{self.url(name)}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
