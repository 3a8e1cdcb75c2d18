"""Generate a realistic large worklog: human lines between agentd entries.

    python bench/gen_worklog.py OUT.txt SIZE_MIB

About 2 KiB per finding and ``ntasks`` human task and directive lines (default
200) spread evenly through the file, so worklogs of different sizes hold the same
human content and differ in how much agentd has written.  Deterministic (seeded).
"""

from __future__ import annotations

import random
import sys

from agentd.worklog.entries import Entry

STATUSES = ["done", "done", "done", "failed", "blocked", "running", "done"]


def generate(path: str, size_mib: float, seed: int = 7, ntasks_total: int = 200) -> None:
    rnd = random.Random(seed)
    target = int(size_mib * 2**20)
    every = max(1, int(target / 2100 / ntasks_total))  # entries between two human lines
    written = 0
    seq = 0
    ntasks = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("# bench_worklog.txt\n\nDIRECTIVE: keep the GPU busy with useful benchmarks\n")
        while written < target:
            r = rnd.random()
            if seq % every == 0 and ntasks < ntasks_total:
                ntasks += 1
                if ntasks % 3 == 0:
                    line = f"- [ ] run benchmark {ntasks} {{run: ./bench.sh {ntasks}, value: {rnd.randint(1, 9)}}}\n"
                elif ntasks % 3 == 1:
                    line = f"- [ ] investigate regression number {ntasks} in the tokenizer\n"
                else:
                    line = f"DIRECTIVE: look into item {ntasks} and write up what you find\n"
                f.write(line)
                written += len(line)
            elif r < 0.05:
                line = "Some human notes about the experiment; nothing to parse here.\n\n"
                f.write(line)
                written += len(line)
            seq += 1
            body = "\n".join(
                [f"**{STATUSES[seq % len(STATUSES)]}** · command `./bench.sh {seq}` · exit 0 · 41.2 s"]
                + [f"step {i}: loss {rnd.random():.4f} tokens/s {rnd.uniform(10, 90):.1f} mem {rnd.uniform(1, 9):.2f} GiB"
                   for i in range(30)]
                + [f"full output: ~/.local/state/agentd/runs/r{seq:08d}/"])
            text = Entry(seq, f"r{seq:08d}", f"t-{rnd.randrange(1, max(ntasks, 1) + 1):08x}",
                         STATUSES[seq % len(STATUSES)], "2026-11-22T12:00:00Z", body=body).render()
            f.write(text)
            written += len(text.encode())


if __name__ == "__main__":
    generate(sys.argv[1], float(sys.argv[2]))
