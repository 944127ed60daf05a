"""Mutation testing of baton's decision modules with mutmut, and the score per module.

    .venv/bin/python scripts/mutation.py                 # every module of [tool.mutmut] only_mutate
    .venv/bin/python scripts/mutation.py --smoke         # one small module and its tests (CI)
    .venv/bin/python scripts/mutation.py --modules baton/fallback/errors.py baton/cooldowns.py
    .venv/bin/python scripts/mutation.py --workdir /tmp/mut --keep --survivors   # rerun later, list survivors

mutmut (pinned in the ``dev`` extra, configured under ``[tool.mutmut]`` in pyproject.toml) is run
in a copy of the checkout (the files git tracks or would track, as they are on disk), so the
``mutants/`` tree it writes never lands in the checkout and edits made while it runs do not
leak into it. A kept ``--workdir`` is reused: mutmut then re-tests only what changed.

The score of a module is detected / (detected + undetected): killed and timed-out mutants are
detected; survivors and mutants no selected test runs are not. Exit status: 0 when mutmut ran
and a score was printed (whatever the score), 1 when it did not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
SMOKE_MODULE = "baton/fallback/retry_status.py"
SMOKE_TESTS = ("tests/unit/test_retry_status.py",)

# mutmut's exit codes per mutant (mutmut/stats.py): what each means for the score.
DETECTED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
UNDETECTED = {0: "survived", 5: "no tests", 33: "no tests"}


@dataclass
class ModuleScore:
    module: str
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)

    def add(self, mutant: str, exit_code: int | None) -> None:
        if exit_code is None:
            status = "not checked"
        else:
            status = DETECTED.get(exit_code) or UNDETECTED.get(exit_code) or "other"
        self.counts[status] = self.counts.get(status, 0) + 1
        if exit_code in UNDETECTED:
            self.survivors.append(mutant)

    @property
    def detected(self) -> int:
        return self.counts.get("killed", 0) + self.counts.get("timeout", 0)

    @property
    def judged(self) -> int:
        return self.detected + self.counts.get("survived", 0) + self.counts.get("no tests", 0)

    @property
    def score(self) -> float | None:
        return 100.0 * self.detected / self.judged if self.judged else None


def project_files(root: Path) -> list[Path]:
    """The checkout's files as git sees them (tracked and untracked, not ignored); all if no git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [p.relative_to(root) for p in root.rglob("*") if p.is_file() and ".venv" not in p.parts]
    return [Path(name) for name in out.decode().split("\0") if name]


def copy_checkout(root: Path, workdir: Path) -> None:
    for rel in project_files(root):
        if rel.parts[0] not in ("baton", "tests") and rel.name != "pyproject.toml":
            continue
        source = root / rel
        if not source.is_file():
            continue  # deleted in the working tree
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == source.read_bytes():
            continue  # unchanged: mutmut tells changed sources by their content
        shutil.copy2(source, target)


def toml_value(value: object) -> str:
    return json.dumps(value)  # strings and lists of strings: JSON is valid TOML for them


def set_mutmut_config(workdir: Path, overrides: dict[str, object]) -> None:
    """Replace keys of the copy's ``[tool.mutmut]`` table (the checkout's pyproject stays as it is)."""
    path = workdir / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^\[tool\.mutmut\]\n(.*?)(?=^\[)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    import tomllib

    table: dict[str, object] = tomllib.loads("[t]\n" + match.group(1))["t"]
    table.update(overrides)
    body = "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
    path.write_text(text[: match.start(1)] + body + "\n" + text[match.end(1):], encoding="utf-8")


def natural(name: str) -> tuple[str, int]:
    """``…__mutmut_10`` after ``…__mutmut_9``."""
    stem, _, number = name.rpartition("_")
    return (stem, int(number)) if number.isdigit() else (name, 0)


def read_scores(workdir: Path) -> dict[str, ModuleScore]:
    scores: dict[str, ModuleScore] = {}
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(workdir / "mutants"))[: -len(".meta")]
        data = json.loads(meta.read_text(encoding="utf-8"))
        score = scores.setdefault(module, ModuleScore(module))
        for mutant, exit_code in sorted(data["exit_code_by_key"].items(), key=lambda item: natural(item[0])):
            score.add(mutant, exit_code)
    return scores


def print_table(scores: dict[str, ModuleScore], *, survivors: bool) -> ModuleScore:
    total = ModuleScore("overall")
    width = max([len("overall"), *(len(m) for m in scores)])
    print(f"\n{'module':<{width}}  mutants  killed  timeout  survived  no tests  score")
    for score in scores.values():
        for status, n in score.counts.items():
            total.counts[status] = total.counts.get(status, 0) + n
        total.survivors += score.survivors
    for row in [*(scores[name] for name in sorted(scores)), total]:
        c = row.counts
        shown = "-" if row.score is None else f"{row.score:5.1f}%"
        if row is total:
            print("-" * (width + 56))
        print(f"{row.module:<{width}}  {sum(c.values()):>7}  {c.get('killed', 0):>6}  {c.get('timeout', 0):>7}  "
              f"{c.get('survived', 0):>8}  {c.get('no tests', 0):>8}  {shown}")
    if survivors and total.survivors:
        print("\nsurvivors (mutmut show NAME in the workdir shows the change):")
        for name in total.survivors:
            print(f"  {name}")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help=f"mutate {SMOKE_MODULE} only, with its own tests")
    parser.add_argument("--modules", nargs="+", metavar="PATH", help="mutate these files (globs) instead")
    parser.add_argument("--mutants", nargs="+", metavar="NAME",
                        help="(re)run these mutants (globs, e.g. 'baton.cooldowns.*'), even if they have a result")
    parser.add_argument("--workdir", type=Path, help="where to copy the checkout and run (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (a given --workdir is always kept)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()

    if not MUTMUT.exists():
        print(f"{MUTMUT} not found: pip install -e '.[dev]'", file=sys.stderr)
        return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="baton-mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    copy_checkout(ROOT, workdir)
    overrides: dict[str, object] = {}
    if args.smoke:
        overrides = {"only_mutate": [SMOKE_MODULE], "pytest_add_cli_args_test_selection": list(SMOKE_TESTS)}
    elif args.modules:
        overrides = {"only_mutate": args.modules}
    if overrides:
        set_mutmut_config(workdir, overrides)

    env = {**os.environ, "BATON_HYPOTHESIS_PROFILE": "ci"}  # the same examples for every mutant
    command = [str(MUTMUT), "run", "--max-children", str(args.max_children), *(args.mutants or [])]
    print(f"mutmut in {workdir}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    run = subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - started
    scores = read_scores(workdir)
    if args.smoke and SMOKE_MODULE in scores:
        scores = {SMOKE_MODULE: scores[SMOKE_MODULE]}
    total = print_table(scores, survivors=args.survivors)
    print(f"\nmutmut exit {run.returncode} after {elapsed:.0f} s; workdir {workdir}"
          f"{'' if args.keep or args.workdir else ' (removed)'}")
    ok = run.returncode == 0 and total.score is not None
    if args.smoke and total.detected == 0:
        ok = False  # the tests never saw a mutant: they import the unmutated code, the setup is broken
        print("smoke: no mutant was killed", file=sys.stderr)
    if not ok:
        print(run.stdout[-5000:], file=sys.stderr)
    if not (args.keep or args.workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
