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
    # pid -> (name, ppid, utime + stime + cutime + cstime): its own time and that of its children that have ended
    # (and been waited for), so that a process ending in the window (a recycled gunicorn worker, its PostgreSQL
    # backends) leaves its time to its parent instead of taking it away.
    ticks: dict[int, tuple[str, int, int]]
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
        ticks[int(entry.name)] = (name, int(fields[1]), sum(int(field) for field in fields[11:15]))
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
    backends of other databases, the machine's other users, count as other.

    A process that ended in the window counts for its group from its time before the window to its
    end, through its parent's count of its ended children (Sample.ticks): a group's time is the sum
    of its processes' counts, which a process ending does not change when its parent is of the same
    group (gunicorn's master, PostgreSQL's postmaster, Celery's main process). PostgreSQL backends of
    other databases that end in the window count as postgres that way; a benchmark runs alone.
    """
    def group_of(pid: int, sample: Sample) -> str:
        seen = 0
        node = pid
        while node in sample.ticks and seen < 64:
            for name, root in roots.items():
                if node == root:
                    return name
            node, seen = sample.ticks[node][1], seen + 1
        name = sample.ticks[pid][0]
        if name.startswith("postgres"):
            words = sample.titles.get(pid, "").split()  # a backend: "postgres: 15/main: user db host(port) state"
            backend = len(words) >= 5 and words[0] == "postgres:" and ("(" in words[4] or words[4] == "[local]")
            return "postgres" if not backend or words[3] == database else "other"
        if name.startswith("redis"):
            return "redis"
        return "other"

    used = dict.fromkeys(GROUPS, 0.0)
    for pid, (_, _, ticks) in after.ticks.items():
        used[group_of(pid, after)] += (ticks - before.ticks.get(pid, ("", 0, 0))[2]) / TICKS / seconds
    for pid, (_, _, ticks) in before.ticks.items():
        if pid not in after.ticks:  # ended: its parent counts all of its time now
            used[group_of(pid, before)] -= ticks / TICKS / seconds
    return {group: max(0.0, share) for group, share in used.items()}
