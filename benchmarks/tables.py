"""Where the benchmarks put their results: benchmarks/out/<name>.md (the printed table) and <name>.json."""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def publish(name, table, raw=None):
    """Print `table`, write it to benchmarks/out/<name>.md, and `raw` (JSON-able), if given, to <name>.json."""
    print(table)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    if raw is not None:
        with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=1)
