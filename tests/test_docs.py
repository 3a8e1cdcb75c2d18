"""The docs that are generated from code stay in step with it."""

from pathlib import Path

from agentd.config.config import reference_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_configuration_reference_lists_every_key_of_the_schema_as_generated():
    assert reference_markdown() in (DOCS / "configuration.md").read_text()


def test_every_doc_the_readme_links_exists():
    import re

    readme = (DOCS.parent / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        assert (DOCS.parent / link).exists(), link


def _entry_examples(text: str) -> list[str]:
    """The fenced blocks of a doc that hold agentd entries."""
    import re

    return [b for b in re.findall(r"```\n(.*?)```", text, re.S) if "=== agentd entry " in b]


def _shape(text: str) -> list[str]:
    """An entry's lines with what changes from run to run (ids, times, counts, paths, versions) masked."""
    import re

    subs = [(r"r\d{8}-\d{6}-[0-9a-f]{16}", "RUN"), (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "AT"),
            (r"seq=\d+", "seq=N"), (r"bytes=\d+", "bytes=N"), (r"\d+\.\d+ s\b", "N s"),
            (r"(?:~|/)\S*", "PATH"), (r"Python \d+\.\d+\.\d+", "Python V"), (r"^> Linux \S+$", "> Linux ARCH")]
    out = []
    for line in text.strip("\n").split("\n"):
        for pattern, to in subs:
            line = re.sub(pattern, to, line)
        out.append(line)
    return out


def test_the_entry_examples_are_whole_entries_as_agentd_reads_them():
    from agentd.worklog.entries import parse_header
    from agentd.worklog.parse import parse_bytes

    examples = _entry_examples((DOCS / "worklog.md").read_text())
    assert len(examples) >= 2
    for block in examples:
        state = parse_bytes(block.encode())
        headers = [parse_header(x.encode()) for x in block.split("\n") if x.startswith("=== agentd entry ")]
        assert all(headers) and state.entry_count == len(headers), block
        assert state.torn == 0 and state.error_count == 0, block
        for h in headers:
            assert len(h.run_id) == len("r20261122-125346-") + 16, h.run_id  # as rundir.new_run_id makes them


def test_the_entry_example_is_what_a_wake_writes(tmp_path):
    """docs/worklog.md's first example is the pair of entries a real wake writes for its command task."""
    import os
    import subprocess
    import sys

    worklog = Path(os.environ["AGENTD_WORKLOG_DIR"]) / "testhost_worklog.txt"
    worklog.write_text('- [ ] check the toolchain {id: toolchain, run: "python3 --version && uname -sm", value: 6}\n')
    p = subprocess.run([sys.executable, "-m", "agentd", "wake", "--now"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "AGENTD_PROVIDER": "none"})
    assert p.returncode == 0, p.stderr
    written = worklog.read_text()
    real = written[written.index("=== agentd entry "):]
    assert _shape(_entry_examples((DOCS / "worklog.md").read_text())[0]) == _shape(real)
