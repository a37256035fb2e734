"""Write the fixed dev/test `split` field into a suite file, in place.

Each question's half is `assistant.evaluation.assign_split(id)` (sha256 of the id: even first
byte dev, odd test), so re-running it changes nothing and a new question never moves an old
one. Every other field, and the order of the lines and of their fields, is kept.

    .venv/bin/python eval/split_suite.py eval/suites/cx_golden.jsonl
    .venv/bin/cx-assistant eval eval/suites/cx_golden.jsonl --split dev
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from assistant.evaluation import assign_split


def split_suite(path: Path) -> Counter[str]:
    """Set `split` on every line of the suite at `path`; returns the count of each half."""
    counts: Counter[str] = Counter()
    lines = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            split = assign_split(str(record["id"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(f"{path}:{n}: not a suite line with an id") from None
        record["split"] = split
        counts[split] += 1
        lines.append(json.dumps(record, ensure_ascii=False))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", "utf-8")
    os.replace(tmp, path)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="+", type=Path, help="suite files (JSON Lines)")
    for path in parser.parse_args().suites:
        counts = split_suite(path)
        print(f"{path}: {counts['dev']} dev, {counts['test']} test")


if __name__ == "__main__":
    main()
