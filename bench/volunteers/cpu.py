"""Where the machine's CPU time went during a measurement window, from /proc.

Client and server share this machine's cores, so each phase says how much the load
generator took, next to gunicorn, PostgreSQL, the Celery worker, Redis and anything else.
"""

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("gunicorn", "postgres", "celery", "redis", "client", "other")


@dataclass(frozen=True)
class Sample:
    ticks: dict[int, tuple[str, int, int]]  # pid -> (name, ppid, utime + stime)
    titles: dict[int, str]  # pid -> command line of PostgreSQL processes ("postgres: 15/main: root db ...")


def sample() -> Sample:
    ticks, titles = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(entry.name)] = (name, int(fields[1]), int(fields[11]) + int(fields[12]))
        if name.startswith("postgres"):
            try:
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return Sample(ticks, titles)


def shares(before: Sample, after: Sample, seconds: float, roots: dict[str, int], database: str = ""
           ) -> dict[str, float]:
    """CPU per group as a fraction of one core (so 2.0 is the whole of a 2-core machine).

    roots maps a group to the pid of a process this benchmark started (gunicorn, celery,
    client): it and its descendants count for that group. PostgreSQL counts the backends
    connected to `database` and the server's shared processes (WAL writer, checkpointer...);
    backends of other databases, the machine's other users, count as other. Processes that
    ended within the window are missed, as are those that started in it for their time before it.
    """
    def group_of(pid: int) -> str:
        seen = 0
        node = pid
        while node in after.ticks and seen < 64:
            for name, root in roots.items():
                if node == root:
                    return name
            node, seen = after.ticks[node][1], seen + 1
        name = after.ticks[pid][0]
        if name.startswith("postgres"):
            words = after.titles.get(pid, "").split()  # a backend: "postgres: 15/main: user db host(port) state"
            backend = len(words) >= 5 and words[0] == "postgres:" and ("(" in words[4] or words[4] == "[local]")
            return "postgres" if not backend or words[3] == database else "other"
        if name.startswith("redis"):
            return "redis"
        return "other"

    used = dict.fromkeys(GROUPS, 0.0)
    for pid, (_, _, ticks) in after.ticks.items():
        spent = ticks - before.ticks.get(pid, ("", 0, 0))[2]
        if spent > 0:
            used[group_of(pid)] += spent / TICKS / seconds
    return used
