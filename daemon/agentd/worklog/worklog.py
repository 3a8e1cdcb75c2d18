"""The worklog file: reading it through the index, and the append protocol.

agentd never truncates, rewrites or renames the worklog.  It only appends
whole blocks, each with one ``write`` and an ``fdatasync``, checking the
inode before and after: when an editor has renamed a new file into place,
the block went to the old file, so it is appended again to the current one.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agentd.errors import WorklogError
from agentd.recordtype import Factory, Record
from agentd.worklog import lost_entries
from agentd.worklog.index import Cached, Index, encode, fingerprint, fold
from agentd.worklog.parse import State


class Read(Record):
    path: Path
    exists: bool
    state: State = Factory(State)
    size: int = 0
    mode: str = "missing"  # missing, cached, incremental, full
    bytes_read: int = 0
    stamp: str = ""  # the version of the file this read is (inode, size, mtime, ctime); "" if not cached


def read(path: Path, index: Index) -> Read:
    """Parse the worklog, reading only the bytes the index hasn't seen."""
    for _ in range(3):
        r, settled = _read_once(path, index)
        if settled:
            return r
    return r  # rewritten again and again while being read: this read is not cached


def read_with_lost(cfg, store=None) -> tuple[Read, list]:
    """The worklog, read once (incrementally through the index), and what a wake and the queue
    need folded in: (read, lost), where ``lost`` are agentd's entries the worklog lost, counted in
    the read as if they were there (``lost_entries``), and suspect lines resolved against agentd's
    copy of its entries (``store``: agentd's store, or None)."""
    r = read(cfg.worklog_path, Index(cfg.index_path))
    if r.state.suspects:
        r.state.resolve_suspects(store.entry_text if store is not None else (lambda run, seq: None))
    lost: list = []
    if store is not None and r.exists:
        r, lost = lost_entries.folded_in(cfg, store, r)
    return r, lost


def _stamp(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _not_regular(path: Path, st: os.stat_result) -> WorklogError:
    if stat.S_ISLNK(st.st_mode):
        try:
            to = f" (to {os.readlink(path)})"
        except OSError:
            to = ""
        return WorklogError(f"{path}: the worklog is a symbolic link{to}; agentd reads and appends only to a "
                            "regular file at that path, never through a link: put the file itself there")
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return WorklogError(f"{path}: the worklog has {st.st_nlink} hard links (another name for the same file); "
                            "agentd appends only to a file with one name, so nothing lands under another "
                            "name too: copy it (cp) so it has a name of its own")
    return WorklogError(f"{path}: the worklog is not a regular file (a directory, FIFO or device); "
                        "put the file itself there")


def _refused(st: os.stat_result) -> bool:
    """Not a regular file with one name: a link, a FIFO, a directory, a device, or a second hard link."""
    return not stat.S_ISREG(st.st_mode) or st.st_nlink > 1


def open_worklog(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open the worklog without following a symbolic link (``O_NOFOLLOW``), and check that what
    was opened is a regular file and still the directory's entry at that path (the ``lstat``
    of the path names the same inode).  Raises WorklogError naming the path otherwise."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | (os.O_NONBLOCK if not flags & os.O_CREAT else 0), mode)
    except OSError as e:
        if e.errno == errno.ELOOP or e.errno == errno.EISDIR or e.errno == errno.ENXIO:
            try:
                raise _not_regular(path, os.lstat(path)) from None
            except OSError:
                pass
        raise
    try:
        st = os.fstat(fd)
        if _refused(st):
            raise _not_regular(path, st)
        entry = os.lstat(path)
        if (entry.st_dev, entry.st_ino) != (st.st_dev, st.st_ino):
            raise _not_regular(path, entry) if not stat.S_ISREG(entry.st_mode) else WorklogError(
                f"{path}: the worklog was replaced while agentd opened it; try again")
        if flags & os.O_NONBLOCK == 0 and not flags & os.O_CREAT:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_once(path: Path, index: Index) -> tuple[Read, bool]:
    """One read; False with it when the file changed while it was being read (then it is not cached)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Read(path, exists=False), True
    except OSError as e:
        raise WorklogError(f"{path}: cannot read the worklog: {e.strerror}") from None
    if _refused(st):
        raise _not_regular(path, st)
    cached = index.get(path)
    stamp = ":".join(map(str, _stamp(st)))
    if cached and (cached.inode, cached.size, cached.mtime_ns, cached.ctime_ns) == _stamp(st):
        state = cached.load_whole() if cached.rest else None
        if state is None:
            state = cached.load()
            if state is not None and cached.rest:  # an unfinished tail: folded in as the read that cached it did
                state.feed(cached.rest, final=True)
                state.present = []
        if state is not None:
            return Read(path, True, state, st.st_size, "cached", 0, stamp), True
    # Incremental only when the file grew and its parsed prefix looks the same;
    # a file rewritten at the same size (an edit in place) is parsed again.
    may_continue = cached is not None and 0 < cached.offset <= st.st_size and not (
        st.st_size == cached.size and (st.st_mtime_ns, st.st_ctime_ns) != (cached.mtime_ns, cached.ctime_ns))
    try:
        with os.fdopen(open_worklog(path), "rb") as f:
            start, state, mode = 0, State(), "full"
            if may_continue and fingerprint(f, cached.offset) == (cached.head, cached.tail) \
                    and cached.load() is not None:
                start, state, mode = cached.offset, cached.state, "incremental"
            ends = _ends(f, st.st_size)
            offset, rest, got = _feed_chunks(f, state, start, st.st_size)
            head, tail_hash = fingerprint(f, offset) if mode == "full" or offset > start else (cached.head, cached.tail)
            # Written to in place while we read (an editor saving, rsync --inplace): the chunks
            # may mix two versions, so don't cache it; read() reads it again.  Only grown (another
            # process appended) is fine: what was read is still there.
            now = os.fstat(f.fileno())
            settled = os.lstat(path).st_ino == st.st_ino and (_stamp(now) == _stamp(st) or (
                now.st_size >= st.st_size and _ends(f, st.st_size) == ends))
    except OSError as e:
        raise WorklogError(f"{path}: cannot read the worklog: {e.strerror}") from None
    # The index keeps the state as of ``offset`` and the unfinished rest, if any (a partial last line,
    # an entry still being written): its bytes, and the state with it folded in (``fold``, once the
    # table as of ``offset`` is written), so an unchanged file is not parsed again.
    present, state.present = state.present, []
    folded: list = []
    if settled:
        index.put(path, Cached(st.st_ino, st.st_size, st.st_mtime_ns, offset, head, tail_hash, encode(state),
                               rest or None, st.st_ctime_ns),
                  replace_present=(mode == "full"), present=present, tasks=state.tasks,
                  whole=(lambda: folded.append(True) or fold(state, rest)) if rest else None)
    if rest and not folded:
        state.feed(rest, final=True)
        state.present = []
    return Read(path, True, state, st.st_size, mode, got, stamp if settled else ""), settled


READ_CHUNK = 8 * 2**20


def _ends(f, size: int) -> tuple[bytes, bytes]:
    """The first and the last 64 KiB of f[:size]: what an edit in place would change."""
    f.seek(0)
    head = f.read(min(size, 65536))
    f.seek(max(0, size - 65536))
    return head, f.read(size - max(0, size - 65536))


def _feed_chunks(f, state: State, offset: int, size: int) -> tuple[int, bytes, int]:
    """Feed the whole lines and entries of f[offset:size] to state, a chunk at a time.

    Chunks keep memory small and are faster than one large read.  Each chunk starts
    where the last one's whole lines and entries ended, so nothing is split.  Memory is
    bounded by a chunk, never by the file's longest line: a line longer than a chunk is
    streamed past (``_long_line``), and an entry longer than a chunk (agentd never writes
    one) is read as torn.  Returns (offset after what was fed, the unfinished rest, bytes read).
    """
    want, got = READ_CHUNK, 0
    cap = max(MAX_WINDOW, READ_CHUNK)
    while True:
        f.seek(offset)
        data = f.read(min(want, size - offset))
        got += len(data)
        last = offset + len(data) >= size or len(data) < want
        cut = data.rfind(b"\n") + 1  # whole lines only
        used = state.feed(data, final=False, end=cut) if cut else 0
        if not used and not last and want < cap:
            want *= 2  # a line or an entry longer than a chunk: a larger window, up to the cap
            continue
        if not used and cut and not last:  # an entry (or a run of quoted lines) longer than the cap
            used = state.feed(data, final=True, end=cut)
        if not used and not last:  # one line longer than the cap
            end, n = _long_line(f, state, offset, size, data)
            got += n
            if end is None:  # it runs to the end of the file: an unfinished last line
                return offset, data[:MAX_LONG_PREFIX], got
            offset = end
            continue
        want = READ_CHUNK
        offset += used
        if last:
            rest = data[used:]
            return offset, rest if len(rest) <= MAX_LONG_PREFIX else rest[:MAX_LONG_PREFIX], got


MAX_LONG_PREFIX = 64 * 1024 + 2  # enough of a long line to tell (and say) that it is too long
MAX_WINDOW = 32 * 2**20  # the largest read: no entry agentd writes comes near it, a line past it is streamed


def _long_line(f, state: State, start: int, size: int, head: bytes) -> tuple[int | None, int]:
    """A line at ``start`` longer than a chunk: fold in its first bytes (which say whether it
    is a line agentd would read, then reported as too long), and find its end a chunk at a
    time.  Returns (offset after its newline, or None at the end of the file; bytes read)."""
    pos, got = start + len(head), 0
    while pos < size:
        f.seek(pos)
        data = f.read(min(READ_CHUNK, size - pos))
        if not data:
            break
        got += len(data)
        j = data.find(b"\n")
        if j >= 0:
            state.feed(head[:MAX_LONG_PREFIX] + b"\n", final=True)
            return pos + j + 1, got
        pos += len(data)
    return None, got


def _append_once(path: Path, data: bytes) -> bool:
    """Append data in one write + fdatasync.  False if the file was replaced meanwhile."""
    try:
        fd = open_worklog(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    except WorklogError as e:
        if "replaced" in str(e):
            return False
        raise
    try:
        before = os.fstat(fd)
        if before.st_size and os.pread(fd, 1, before.st_size - 1) != b"\n":
            data = b"\n" + data  # never glue our block onto a human's unfinished line
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fdatasync(fd)
        try:
            return os.lstat(path).st_ino == before.st_ino
        except FileNotFoundError:
            return False
    finally:
        os.close(fd)


def check_writable(path: Path) -> None:
    """Raise WorklogError when the worklog can't be appended to (a read-only mount, an immutable file, no
    permission): a wake says so before it records anything, so no run is left that never started."""
    try:
        fd = open_worklog(path, os.O_RDWR | os.O_APPEND)
    except OSError as e:
        raise WorklogError(f"{path}: cannot append to the worklog: {e.strerror}") from None
    os.close(fd)


def append(path: Path, text: str) -> None:
    """Append a whole block of text, again if an editor replaced the file meanwhile."""
    data = text.encode("utf-8")
    try:
        for _ in range(5):
            if _append_once(path, data):
                return
    except OSError as e:
        raise WorklogError(f"{path}: cannot append to the worklog: {e.strerror}") from None
    raise WorklogError(f"{path}: the file kept being replaced while agentd appended to it")


HEADER = """\
# {host} worklog: the mailbox between you and agentd.
#
# Write to it with your editor; agentd only ever appends.  It understands:
#   - [ ] a task you want done {{value: 6, certainty: 0.8}}
#   - [ ] a command task {{run: make test, minutes: 10, id: tests}}
#   - [x] a task you have done yourself
#   DIRECTIVE: guidance for the agent {{priority: high}}
#   **CRITICAL DIRECTIVE**: something that must not wait
#   BLOCKER: something in the way
#   EXPERIMENT: cuda-probe
#   DONE: ID   CANCEL: ID   RETRY: ID
#   APPROVE: AP-ID   DENY: AP-ID reason   (answers to an agent's approval request)
# {{attrs}} is an optional YAML flow mapping: id, value (0-10), certainty (0-1),
# run, gpu, network, after, minutes, priority, limit_waits; QC gates and series: expect, metrics,
# baseline_window, every, accept_claimed (docs/metrics.md).  Lines starting with "> " and the blocks
# between "=== agentd" markers are agentd's own entries.
# `agentd queue` shows what the next wake would do and why.  Docs: docs/worklog.md

"""


def init(path: Path, host: str) -> bool:
    """Create the worklog with its header.  False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(HEADER.format(host=host))
    return True
