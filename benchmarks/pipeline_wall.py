"""Wall time of the main job: `dvc repro` on the sample profile from nothing, then a no-op `dvc repro`.

The working tree's tracked and new files (not the ignored outputs) are copied into a fresh git repository, so the
run starts from what a fresh clone holds; .venv is shared, setup time is not counted. Each stage's wall time is read
off DVC's "Running stage" lines as they arrive. Printed: the whole run and the no-op run in seconds, each as a ratio
to its target (10 minutes and 3 s on the 2-core machine), and the stages by time. The no-op run is repeated
`--noop-rounds` times; the median counts.

    python benchmarks/pipeline_wall.py                  # about 6 minutes on the 2-core machine
    python benchmarks/pipeline_wall.py --json benchmarks/results/pipeline_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_FULL_S = 600.0
TARGET_NOOP_S = 3.0


def copy_working_tree(destination: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / ".venv").symlink_to(REPO / ".venv")
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "base"]):
        subprocess.run(command, cwd=destination, check=True)


def timed_repro(workdir: Path, env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """Seconds of one `dvc repro`, and (stage, seconds) in the order the stages ran."""
    started = time.perf_counter()
    process = subprocess.Popen(["dvc", "repro"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    stages: list[tuple[str, float]] = []
    current, since, tail = None, started, []
    for line in process.stdout:
        tail = [*tail[-30:], line]
        match = re.match(r"Running stage '(.+)':", line)
        if match:
            now = time.perf_counter()
            if current is not None:
                stages.append((current, now - since))
            current, since = match.group(1), now
    if process.wait() != 0:
        sys.exit("dvc repro failed:\n" + "".join(tail))
    total = time.perf_counter() - started
    if current is not None:
        stages.append((current, started + total - since))
    return total, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noop-rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder) / "repo"
        copy_working_tree(workdir)
        full, stages = timed_repro(workdir, env)
        noops = [timed_repro(workdir, env)[0] for _ in range(args.noop_rounds)]
    noop = statistics.median(noops)
    print(f"dvc repro, sample profile, from nothing: {full:.1f} s  ({full / TARGET_FULL_S:.2f} × the "
          f"{TARGET_FULL_S:.0f} s target)")
    print(f"dvc repro, nothing to do: median {noop:.2f} s of {len(noops)}  ({noop / TARGET_NOOP_S:.2f} × the "
          f"{TARGET_NOOP_S:.0f} s target)")
    print("stages by wall time:")
    for name, seconds in sorted(stages, key=lambda item: -item[1]):
        print(f"  {name:34} {seconds:7.1f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "full_s": full, "noop_s": noops, "noop_median_s": noop, "targets_s": [TARGET_FULL_S, TARGET_NOOP_S],
            "stages_s": dict(stages)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
