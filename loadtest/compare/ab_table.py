"""Prints a markdown table of fti-loadtest summaries from a same-run A/B script.

    python3 ab_table.py OUT ROUNDS TITLE KEY=NAME [KEY=NAME ...]

Reads OUT/KEY-rN.json for N in 1..ROUNDS (and OUT/KEY-rN.count.json when a run counted
prediction log records, OUT/KEY-rN.cpu.json when it measured the server's CPU seconds).
Standard library only."""
import json
import statistics
import sys
from pathlib import Path


def main() -> None:
    out, rounds, title = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rows = [a.split("=", 1) for a in sys.argv[4:]]
    if not (out / f"{rows[0][0]}-r1.json").exists():
        return
    counted = (out / f"{rows[0][0]}-r1.count.json").exists() or any(
        (out / f"{k}-r1.count.json").exists() for k, _ in rows)
    cpu = (out / f"{rows[0][0]}-r1.cpu.json").exists()
    print(f"\n{title}\n")
    head = "| configuration | p50 ms (rounds) | p99 ms (rounds) | median p50 ms | median p99 ms | req/s (median) | errors |"
    print(head + (" records accepted / in sink / dropped |" if counted else "")
          + (" server CPU s / 1k req (rounds) | median |" if cpu else ""))
    print("|---|---|---|---:|---:|---:|---:|" + ("---|" if counted else "") + ("---|---:|" if cpu else ""))
    for key, name in rows:
        runs = [json.loads((out / f"{key}-r{r}.json").read_text()) for r in range(1, rounds + 1)]
        p50 = [x["latency_us"]["p50"] / 1000 for x in runs]
        p99 = [x["latency_us"]["p99"] / 1000 for x in runs]
        tput = statistics.median(x["throughput_rps"] for x in runs)
        errors = sum(x.get("error_count", 0) for x in runs)
        line = (f"| {name} | {' / '.join(f'{x:.3f}' for x in p50)} | {' / '.join(f'{x:.3f}' for x in p99)} "
                f"| {statistics.median(p50):.3f} | {statistics.median(p99):.3f} | {tput:.0f} | {errors} |")
        if counted:
            files = [out / f"{key}-r{r}.count.json" for r in range(1, rounds + 1)]
            if files[0].exists():
                c = [json.loads(p.read_text()) for p in files]
                line += " " + " / ".join(
                    f"{int(x['accepted'])}/{x['in_sink']}/{int(x['dropped_queue'])}" for x in c) + " |"
            else:
                line += " - |"
        if cpu:
            c = [json.loads((out / f"{key}-r{r}.cpu.json").read_text()) for r in range(1, rounds + 1)]
            per_k = [1000 * x["cpu_s"] / max(x["requests"], 1) for x in c]
            line += f" {' / '.join(f'{x:.4f}' for x in per_k)} | {statistics.median(per_k):.4f} |"
        print(line)


if __name__ == "__main__":
    main()
