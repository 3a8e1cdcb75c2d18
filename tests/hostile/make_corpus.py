"""Write the hostile-input corpus: one file per case, its expectation in its first line.

    python tests/hostile/make_corpus.py      # rewrites tests/hostile/{worklog,tasks,config}/

First line of every case (a comment in all three formats):

    # expect: exit=N lines=L1,L2 text=SUBSTRING

``exit``: the exit code of ``agentd queue --json`` (config cases: ``agentd queue``); ``lines``:
the worklog lines reported unreadable (worklog cases; ``-`` for none); ``text``: what the
output must contain (the rest of the line; ``|`` separates several).  Every case must also
finish without a traceback.  tests/test_hostile.py::test_corpus runs them all.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
BOMB = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n")


def entry(seq, task="x", status="done", run="r20260101-000000-beef", body="> forged\n", extra=""):
    rest = f"{body}=== agentd end seq={seq} run={run} ===\n"
    return (f"=== agentd entry seq={seq} run={run} task={task} status={status} at=2026-01-01T00:00:00Z{extra} "
            f"lines={rest.count(chr(10))} bytes={len(rest.encode())} ===\n{rest}")


GOOD = "- [ ] good {id: good, run: 'true'}\n"
# (name, worklog body after the expectation line and GOOD, bad line numbers, text)
W = [
    ("value-5000-digits", "- [ ] x {value: " + "9" * 5000 + "}\n", [3], "digits"),
    ("certainty-5000-digits", "- [ ] x {certainty: 0." + "1" * 5000 + "}\n", [3], "digits"),
    ("minutes-huge-float", "- [ ] x {minutes: " + "9" * 400 + ".0}\n", [3], "digits"),
    ("size-huge-int", "EXPERIMENT: cuda-probe {size: " + "7" * 200 + "}\n", [3], "digits"),
    ("max-new-tokens-negative", "EXPERIMENT: model-bench {max_new_tokens: -5}\n", [3], "between"),
    ("value-inf", "- [ ] x {value: .inf}\n", [3], "finite"),
    ("value-nan", "- [ ] x {value: .nan}\n", [3], "finite"),
    ("value-exp-overflow", "- [ ] x {value: 1.0e+999999}\n", [3], "finite"),
    ("value-negative", "- [ ] x {value: -1}\n", [3], "between"),
    ("value-string", "- [ ] x {value: lots}\n", [3], "must be a number"),
    ("certainty-two", "- [ ] x {certainty: 2}\n", [3], "between"),
    ("after-deep-list", "- [ ] x {after: " + "[" * 5000 + "a" + "]" * 5000 + "}\n", [3], "deep"),
    ("after-deep-map", "- [ ] x {after: " + "{a: " * 3000 + "b" + "}" * 3000 + "}\n", [3], "deep"),
    ("after-33-deep", "- [ ] x {after: " + "[" * 33 + "a" + "]" * 33 + "}\n", [3], "deep"),
    ("after-nested-list", "- [ ] x {after: [a, [b]]}\n", [3], "list of ids"),
    ("after-map", "- [ ] x {after: {a: 1}}\n", [3], "list of ids"),
    ("after-bool", "- [ ] x {after: true}\n", [3], "list of ids"),
    ("alias-bomb-attrs", "- [ ] x {a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
     "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}\n", [3], "alias"),
    ("alias-small", "- [ ] x {id: &i x1, run: *i}\n", [], "x1"),
    ("python-tag", "- [ ] x {run: !!python/object/apply:os.system [id]}\n", [3], "YAML"),
    ("binary-tag", "- [ ] x {run: !!binary aGVsbG8=}\n", [3], "must be a string"),
    ("set-tag", "- [ ] x {after: !!set {a, b}}\n", [3], "list of ids"),
    ("timestamp-value", "- [ ] x {value: 2026-01-01}\n", [3], "must be a number"),
    ("unknown-key", "- [ ] x {valeu: 3}\n", [3], "unknown key"),
    ("duplicate-key", "- [ ] x {id: a, id: b}\n", [3], "given twice"),
    ("unbalanced", "- [ ] x {value: 1\n", [3], "no closing"),
    ("unbalanced-close", "- [ ] x value: 1}\n", [], "good"),
    ("flow-seq-not-map", "- [ ] x {[1, 2]: 3}\n", [3], "YAML"),
    ("empty-run", "- [ ] x {run: ''}\n", [3], "run"),
    ("run-list", "- [ ] x {run: [a, b]}\n", [3], "must be a string"),
    ("run-map", "- [ ] x {run: {a: b}}\n", [3], "must be a string"),
    ("id-too-long", "- [ ] x {id: " + "a" * 81 + "}\n", [3], "id"),
    ("id-slash", "- [ ] x {id: ../../etc/passwd}\n", [3], "id"),
    ("id-list", "- [ ] x {id: [a]}\n", [3], "must be a string"),
    ("priority-unknown", "- [ ] x {priority: urgent}\n", [3], "must be one of"),
    ("gpu-string", "- [ ] x {gpu: maybe}\n", [3], "true or false"),
    ("nul-byte", "- [ ] x\0y {value: 1}\n", [3], "NUL"),
    ("invalid-utf8", "- [ ] x \udcff {value: 1}\n", [3], "UTF-8"),
    ("line-over-64k", "- [ ] " + "x" * 70000 + "\n", [3], "at most"),
    ("directive-over-64k", "DIRECTIVE: " + "y" * 70000 + "\n", [3], "at most"),
    ("prose-over-64k", "z" * 70000 + "\n", [], "good"),
    ("done-without-id", "DONE:\n", [3], "needs a task id"),
    ("retry-bad-id", "RETRY: ../x\n", [3], "needs a task id"),
    ("cancel-control", "CANCEL: \x1b[2J\n", [3], "needs a task id"),
    ("experiment-no-name", "EXPERIMENT: {value: 3}\n", [3], "name"),
    ("task-no-title", "- [ ] {value: 3}\n", [3], "title"),
    ("crlf", "- [ ] crlf {id: crlf, value: 2}\r\n", [], "crlf"),
    ("bom-mid-file", "\ufeff- [ ] bom {id: bom}\n", [], "bom"),
    ("u2028-inside", "- [ ] a\u2028b {id: sep}\n", [], "sep"),
    ("seq-2-62-minus-1", entry(2**62 - 1), [3], "out of agentd's range"),
    ("seq-2-62", entry(2**62), [3], "out of agentd's range"),
    ("seq-10-15", entry(10**15), [3], "out of agentd's range"),
    ("seq-5000-digits", entry("9" * 5000), [3], "out of agentd's range"),
    ("seq-zero", entry(0), [3], "out of agentd's range"),
    ("seq-leading-zeros", entry("007"), [], "good"),
    ("seq-letters", entry("abc"), [3], "damaged"),
    ("status-unknown", entry(5, status="pwned"), [3], "damaged"),
    ("bytes-lie", entry(5).replace("bytes=", "bytes=9"), [], "good"),
    ("bytes-huge", entry(5).replace(" bytes=", " bytes=99999999999999999999"), [], "good"),
    ("header-no-end", entry(5).rsplit("=== agentd end", 1)[0], [], "good"),
    ("end-without-begin", "prose\n> x\n=== agentd end seq=5 run=r1 ===\n", [], "good"),
    ("cut-off-entry-start", "- [ ] tail of a body\n> x\n=== agentd end seq=5 run=r1 ===\n", [3], "cut-off"),
    ("nested-begin", entry(5).replace("> forged\n", "> forged\n" + entry(6)), [], "good"),
    ("quoted-task-inside-entry", entry(5, body="> - [ ] sneaky {id: sneaky}\n- [ ] sneaky2 {id: sneaky2}\n"),
     [], "good"),
    ("entry-body-task-unquoted", entry(5, body="- [ ] inner {id: inner}\n"), [], "good"),
    ("header-extra-junk", entry(5, extra=" evil=$(rm) x=y"), [], "good"),
    ("header-huge-line", "=== agentd entry seq=5 " + "x" * 70000 + "\n", [3], "damaged"),
    ("many-bad-lines", "- [ ] b {value: x}\n" * 600, list(range(3, 503)), "good"),
    ("double-bom", "\ufeff\ufeff- [ ] two boms {id: dbom}\n", [], "dbom"),
]

# task files: (name, text, text expected in task_file_problems or tasks)
T = [
    ("alias-bomb", BOMB, "alias"),
    ("deep-list", "- title: x\n  after: " + "[" * 3000 + "]" * 3000 + "\n", "deep"),
    ("deep-block", "title: x\nafter:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), "deep"),
    ("value-5000-digits", "title: x\nvalue: " + "9" * 5000 + "\n", "digits"),
    ("value-inf", "title: x\nvalue: .inf\n", "finite"),
    ("not-a-mapping", "just a string\n", "mapping"),
    ("list-of-scalars", "- a\n- b\n", "mapping"),
    ("missing-title", "value: 3\n", "'title': is required"),
    ("title-list", "title: [a, b]\n", "must be a string"),
    ("kind-unknown", "title: x\nkind: rootkit\n", "must be one of"),
    ("done-string", "title: x\ndone: perhaps\n", "true or false"),
    ("duplicate-key", "title: x\ntitle: y\n", "given twice"),
    ("tabs", "title:\tx\n\tvalue: 3\n", "YAML"),
    ("invalid-utf8", "title: \udcff\n", "UTF-8"),
    ("python-tag", "title: !!python/object/apply:os.system [id]\n", "YAML"),
    ("recursive-anchor", "a: &a [*a]\n", "loop"),
    ("merge-key", "base: &b {value: 3}\nitem:\n  <<: *b\n  title: x\n", "unknown key"),
    ("unknown-key", "title: x\nvaleu: 3\n", "did you mean"),
    ("id-bad", "title: x\nid: ../x\n", "id"),
    ("empty-run", "title: x\nrun: ''\n", "run"),
    ("multi-document", "title: x\n---\ntitle: y\n", "YAML"),
    ("huge-key-count", "".join(f"k{i}: {i}\n" for i in range(5000)), "unknown key"),
    ("many-items-ok", "".join(f"- {{title: t{i}, id: file-t{i}, run: 'true'}}\n" for i in range(300)), "file-t299"),
    ("good-file", "- title: from a file\n  id: filetask\n  run: 'true'\n", "filetask"),
    ("binary-garbage", "\x00\x01\x02title\x7f: \x1b[2J\n", "YAML"),
]

# configs: (name, text, exit, text)
C = [
    ("alias-bomb", BOMB, 78, "alias"),
    ("deep-flow", "budget: " + "[" * 5000 + "]" * 5000 + "\n", 78, "deep"),
    ("deep-block", "budget:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)), 78, "deep"),
    ("int-5000-digits", "max_steps: " + "9" * 5000 + "\n", 78, "digits"),
    ("float-inf", "max_load: .inf\n", 78, "finite"),
    ("float-nan", "context_share: .nan\n", 78, "finite"),
    ("max-steps-zero", "max_steps: 0\n", 78, "between"),
    ("unknown-key", "max_step: 3\n", 78, "did you mean"),
    ("duplicate-key", "max_steps: 3\nmax_steps: 4\n", 78, "given twice"),
    ("list-top", "- a\n- b\n", 78, "mapping"),
    ("scalar-top", "hello\n", 78, "mapping"),
    ("invalid-yaml", "max_steps: [\n", 78, "not valid YAML"),
    ("invalid-utf8", "notify: \udcff\n", 78, "UTF-8"),
    ("python-tag", "notify: !!python/object/apply:os.system [id]\n", 78, "YAML"),
    ("worklog-dir-list", "worklog_dir: [a, b]\n", 78, "must be a path"),
    ("state-dir-int", "state_dir: 5\n", 78, "must be a path"),
    ("budget-string", "budget: lots\n", 78, "mapping"),
    ("budget-deep-ok-depth", "budget: {usd_per_day: {a: {b: 1}}}\n", 78, "must be a number"),
    ("prices-garbage", "prices: {m: {input: x, output: 1}}\n", 78, "prices"),
    ("prices-bomb", "p: &p [1,1,1,1,1,1,1,1,1,1]\nq: &q [*p,*p,*p,*p,*p,*p,*p,*p,*p,*p]\n"
     "r: &r [*q,*q,*q,*q,*q,*q,*q,*q,*q,*q]\ns: &s [*r,*r,*r,*r,*r,*r,*r,*r,*r,*r]\n"
     "prices: {m: [*s,*s,*s,*s,*s,*s,*s,*s,*s,*s]}\n", 78, "alias"),
    ("prices-big-value", "prices: {m: [" + ", ".join(["1"] * 5000) + "]}\n", 78, "a list of 5000"),
    ("quiet-hours-bad", "quiet_hours: 25:00-26:00\n", 78, "time range"),
    ("interval-bad", "interval: forever\n", 78, "duration"),
    ("provider-bad", "provider: skynet\n", 78, "must be one of"),
    ("empty-file", "", 0, "good"),
    ("comments-only", "# nothing\n", 0, "good"),
    ("tabs", "max_steps:\t3\n\tinterval: 6h\n", 78, "YAML"),
    ("huge-string-ok", "notify: '" + "n" * 100000 + "'\n", 0, "good"),
    ("binary-garbage", "\x00\x01\x02\x7f\x1b[2J\n", 78, "YAML"),
    ("sandbox-yes", "sandbox: yes\n", 78, "not a yes/no"),
]


def main() -> None:
    for sub in ("worklog", "tasks", "config"):
        d = HERE / sub
        d.mkdir(exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    for i, (name, body, lines, text) in enumerate(W, 1):
        head = f"# expect: exit=0 lines={','.join(map(str, lines)) or '-'} text={text}\n"
        data = (head + GOOD + body).encode("utf-8", "surrogateescape")
        (HERE / "worklog" / f"{i:03d}-{name}.txt").write_bytes(data)
    for i, (name, body, text) in enumerate(T, 1):
        head = f"# expect: exit=0 text={text}\n"
        (HERE / "tasks" / f"{i:03d}-{name}.yaml").write_bytes((head + body).encode("utf-8", "surrogateescape"))
    for i, (name, body, code, text) in enumerate(C, 1):
        head = f"# expect: exit={code} text={text}\n"
        (HERE / "config" / f"{i:03d}-{name}.yaml").write_bytes((head + body).encode("utf-8", "surrogateescape"))
    print(f"{len(W)} worklogs, {len(T)} task files, {len(C)} configs")


if __name__ == "__main__":
    main()
