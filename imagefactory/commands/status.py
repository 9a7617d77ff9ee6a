"""`klab status`: is the lab ready?  Both lineages, every golden, the exporter, the last run.

The layout is the lab documentation's: a count per lineage (`klab-ztest-* : 5/5 ready`),
one row per golden in the documented order (centos rocky fedora debian ubuntu) with its
OpenZFS version, ksh, zfs-tests.sh and vdev images marked ✅/❌ and its age, PR goldens under
their release golden with the commit they were built from, an Observability section, and
the command to try once the ztest lineage is ready.  `--json` carries the same facts.

The guest facts come from the golden's provenance (`guest_facts`, written at build time),
so every host that reads the store sees the same answer.  A golden whose provenance lacks
them (built before they were recorded) is not ready: nothing shows what it holds.  The
distros and their goldens' names come from the spec files read without the models
(spec/index.py): the status starts in a few interpreter start-ups, without pydantic.
One unusable golden (a corrupt manifest, forged properties) never hides the others: it is
listed as damaged with the reason.  A golden of a copied files store is `moved, not
verified` until `imagefactory verify` (or the first `klab test` clone) checks its digest.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory import settings
from imagefactory.errors import ImageFactoryError

if TYPE_CHECKING:  # the store and the spec index load when the command runs (fast --help)
    from imagefactory.spec.index import DistroGoldens
    from imagefactory.store.base import Golden

METRICS_ADDR_FILE = "metrics.addr"  # written by `klab metrics serve` (metrics/server.py)
PROBE_SECONDS = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("status", help="show whether the lab is ready")
    settings.add_store_option(parser)
    settings.add_history_option(parser)
    parser.add_argument("--json", action="store_true", help="the same facts as JSON")
    parser.set_defaults(handler=run)


# --- facts ---------------------------------------------------------------------------------


def age(stamp: str, now: datetime) -> str | None:
    """`3h`, `2d`... since an ISO time; None when the stamp does not parse."""
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def ztest_problems(golden: Golden, facts: dict[str, Any]) -> list[str]:
    """Why a present ztest golden cannot run the suite; empty when it can."""
    if not facts:
        return ["guest facts not recorded in the golden: rebuild it"]
    problems = []
    if not golden.provenance.zfs_version:
        problems.append("OpenZFS version unknown")
    if not facts.get("ksh"):
        problems.append("ksh missing")
    if not facts.get("zfs_tests_sh"):
        problems.append("zfs-tests.sh missing")
    vdevs, wanted = facts.get("vdevs"), facts.get("vdev_count")
    if not vdevs:
        problems.append("no vdev images")
    elif wanted is not None and vdevs < wanted:
        problems.append(f"vdev images {vdevs}/{wanted}")
    return problems


def golden_facts(golden: Golden, lineage: str, now: datetime) -> dict[str, Any]:
    from imagefactory.store.guest_facts import read_guest_summary

    prov = golden.provenance
    facts = read_guest_summary(prov.guest_facts)
    row: dict[str, Any] = {
        "golden": golden.leaf,
        "name": golden.name,
        "present": True,
        "built_at": prov.built_at,
        "age": age(prov.built_at, now),
        "build_id": prov.build_id,
        "zfs_version": prov.zfs_version,
        "suite_version": prov.suite_version,
        "virtual_size": golden.virtual_size,
        "allocated": golden.allocated,
        "clones": len(golden.clones),
        "verified": not golden.moved,
    }
    problems: list[str] = []
    if lineage == "ztest":
        row.update(
            ksh=facts.get("ksh"),
            zfs_tests_sh=facts.get("zfs_tests_sh"),
            vdevs=facts.get("vdevs"),
            vdev_count=facts.get("vdev_count"),
            commit=facts.get("zfs_commit"),
            source=facts.get("zfs_source"),
        )
        problems = ztest_problems(golden, facts)
    row["problems"] = problems
    row["ready"] = not problems
    return row


def lineage_facts(
    goldens: dict[str, Golden],
    damaged: dict[str, str],
    lineage: str,
    now: datetime,
    distros: list[DistroGoldens],
) -> dict[str, Any]:
    """Every distro's release golden of one lineage, PR goldens under it, and the count."""
    from imagefactory.spec.names import release_leaf

    # In the documented order; one row per short name (it names the golden).
    specs = {d.short: (d.spec, d.leaves[lineage]) for d in distros}
    rows = []
    for short, (name, leaf) in specs.items():
        golden = goldens.get(leaf)
        row: dict[str, Any] = {"distro": short, "spec": name, "golden": leaf, "present": False}
        if golden is not None:
            row.update(golden_facts(golden, lineage, now))
        elif leaf in damaged:
            row["damaged"] = damaged[leaf]
        row.setdefault("ready", False)
        row["prs"] = [
            golden_facts(goldens[pr], lineage, now)
            for pr in sorted(goldens)
            if pr.startswith(f"{leaf}-")
        ] + [
            {"golden": pr, "present": False, "ready": False, "damaged": reason}
            for pr, reason in sorted(damaged.items())
            if pr.startswith(f"{leaf}-")
        ]
        rows.append(row)
    return {
        "lineage": lineage,
        "pattern": release_leaf("*", lineage),  # klab-ztest-*
        "ready": sum(1 for r in rows if r["ready"]),
        "total": len(rows),
        "goldens": rows,
    }


def exporter_facts(state: Path) -> dict[str, Any]:
    """The exporter's address (from its address file) and whether it answers there."""
    import socket  # ~25 ms: only when the status runs

    path = state / METRICS_ADDR_FILE
    try:
        addr = path.read_text(encoding="utf-8", errors="replace")[:300].strip()
    except FileNotFoundError:
        return {"state": "not running", "address": None}
    except OSError as exc:
        return {"state": f"unreadable ({exc.strerror})", "address": None}
    where = parse_addr(addr)
    if where is None:
        shown = addr[:60].encode("unicode_escape").decode("ascii")
        return {"state": f"bad address file {path}", "address": shown}
    host, port = where
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            pass
    except OSError:
        return {"state": "not answering (stale address file)", "address": addr}
    return {"state": "active", "address": addr}


def parse_addr(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` or `[V6]:PORT` (as the exporter writes it), None for anything else."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None
    if not sep or not host or not host.isprintable():
        return None
    if not port.isascii() or not port.isdigit() or len(port) > 5:
        return None
    return (host, int(port)) if 0 < int(port) < 65536 else None


def last_run_facts(history: Path | None) -> dict[str, Any] | None:
    """The last run's id, selection and verdict counts; None with no history at all."""
    from imagefactory.testrun.history.database import History
    from imagefactory.testrun.history.location import default_db_path
    from imagefactory.testrun.history.values import RunRef

    path = history if history is not None else default_db_path()
    if not path.exists():
        return None
    try:
        with History.open(path, readonly=True) as db:
            rows = db.runs(last=1)
            if not rows:
                return {"run_id": None}
            run = db.resolve_run(RunRef(rows[0].run_id))
            tests = db.run_tests(run)
    except ImageFactoryError as exc:
        return {"error": str(exc)}
    verdicts = Counter(
        t.verdict or t.result.lower() for rows_ in tests.values() for t in rows_.values()
    )
    return {
        "run_id": run.run_id,
        "started": run.started,
        "selection": run.selection,
        "distros": {r.distro: r.status for r in rows},
        "verdicts": dict(sorted(verdicts.items())),
    }


# --- output --------------------------------------------------------------------------------


def golden_line(row: dict[str, Any], lineage: str) -> str:
    """`zfs-2.2.9, ksh, zfs-tests.sh, vdev images ✅ (built 2d ago)` and its variants."""
    if not row["present"]:
        what = f"damaged: {row['damaged']}" if row.get("damaged") else "absent"
        return f"{what} ❌ ({row['golden']})"
    if lineage == "ztest":
        version = row.get("zfs_version")
        items = f"zfs-{version}" if version else "zfs ?"
        items += ", ksh, zfs-tests.sh, vdev images"
    else:
        items = "ready" if row["ready"] else "not ready"
    line = f"{items} {'✅' if row['ready'] else '❌'}"
    notes = [f"built {row['age']} ago" if row.get("age") else f"built {row['built_at']}"]
    if row.get("commit"):
        notes.append(f"commit {str(row['commit'])[:12]}")
    notes += row["problems"]
    if not row["verified"]:
        notes.append("moved, not verified: run imagefactory verify")
    return f"{line} ({'; '.join(notes)})"


def render(facts: dict[str, Any], *, sudo: str) -> list[str]:
    lines = ["=== klab status ===", f"store: {facts['store']}", "Lineages:"]
    for lineage in facts["lineages"]:
        lines.append(f"  {lineage['pattern']} : {lineage['ready']}/{lineage['total']} ready")
        for row in lineage["goldens"]:
            lines.append(f"    {row['distro']}: {golden_line(row, lineage['lineage'])}")
            for pr in row["prs"]:
                suffix = pr["golden"].removeprefix(f"{row['golden']}-")
                lines.append(f"      {suffix}: {golden_line(pr, lineage['lineage'])}")
    lines.append("Observability:")
    exporter = facts["exporter"]
    where = f" ({exporter['address']})" if exporter["address"] else ""
    lines.append(f"  exporter: {exporter['state']}{where}")
    lines.append(f"  last run: {last_run_line(facts['last_run'])}")
    ztest = next(x for x in facts["lineages"] if x["lineage"] == "ztest")
    if ztest["total"] and ztest["ready"] == ztest["total"]:
        lines += ["", f"Try: {sudo}klab test all --suite quick"]
    return lines


def last_run_line(run: dict[str, Any] | None) -> str:
    if run is None:
        return "none (no test history yet)"
    if "error" in run:
        return f"history unreadable: {run['error']}"
    if run["run_id"] is None:
        return "none (the test history holds no runs)"
    counts = ", ".join(f"{n} {verdict}" for verdict, n in run["verdicts"].items()) or "no tests"
    return f"{run['run_id']} ({run['selection']}): {counts}"


def run(args: argparse.Namespace) -> int:
    from imagefactory.spec.index import release_goldens
    from imagefactory.store.select import open_store

    now = datetime.now(UTC)
    store = open_store(args.store)
    goldens = {g.leaf: g for g in store.list_goldens()}
    damaged = store.damaged()
    distros = release_goldens()
    facts = {
        "store": store.spec,
        "lineages": [
            lineage_facts(goldens, damaged, lineage, now, distros)
            for lineage in settings.LINEAGE_CHOICES
        ],
        "exporter": exporter_facts(settings.state_dir()),
        "last_run": last_run_facts(args.history),
    }
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print("\n".join(render(facts, sudo="sudo " if os.geteuid() == 0 else "")))
    return 0
