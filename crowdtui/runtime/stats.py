"""CPU and memory per running agent (one-shot samples, taken in parallel threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.threads import in_thread


@dataclass(frozen=True)
class AgentStats:
    name: str
    cpu: float  # percent of one CPU (200.0 = two CPUs busy)
    memory: int  # bytes in use (page cache not counted)
    memory_limit: int  # bytes (0: unknown)
    pids: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory / self.memory_limit if self.memory_limit else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "memory_percent": round(self.memory_percent, 1)}


def cpu_percent(sample: dict[str, Any]) -> float:
    """CPU use between the sample's two readings, as ``docker stats`` computes it."""
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage", 0)
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0)
    pre_system = pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_delta, system_delta = total - pre_total, system - pre_system
    if cpu_delta <= 0 or system_delta <= 0 or not pre_total:
        return 0.0
    return cpu_delta / system_delta * cpus * 100.0


def memory_used(sample: dict[str, Any]) -> int:
    """Memory in use without the page cache (cgroup v1 ``cache`` / v2 ``inactive_file``)."""
    mem = sample.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0)
    stats = mem.get("stats") or {}
    cache = stats.get("total_inactive_file", stats.get("inactive_file", stats.get("cache", 0)))
    return max(0, usage - int(cache or 0))


def _sample(container) -> dict[str, Any] | None:
    try:
        return container.stats(stream=False)
    except Exception:  # stopped or removed meanwhile
        return None


def collect_sync(runtime: Runtime) -> list[AgentStats]:
    containers = []
    for info in runtime.list_sync():
        if info.running:
            container = runtime.container_sync(info.name)
            if container is not None:
                containers.append((info.name, container))
    if not containers:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(containers))) as pool:
        samples = list(pool.map(lambda pair: (pair[0], _sample(pair[1])), containers))
    out = []
    for name, sample in samples:
        if not sample or not sample.get("memory_stats"):
            continue
        out.append(AgentStats(
            name=name,
            cpu=round(cpu_percent(sample), 2),
            memory=memory_used(sample),
            memory_limit=int((sample.get("memory_stats") or {}).get("limit") or 0),
            pids=int((sample.get("pids_stats") or {}).get("current") or 0),
        ))
    return sorted(out, key=lambda s: s.name)


async def collect(runtime: Runtime) -> list[AgentStats]:
    """One sample per running agent (takes about a second: the engine reads twice)."""
    return await in_thread(collect_sync, runtime)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
