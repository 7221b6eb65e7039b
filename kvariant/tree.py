"""The kernel tree: our own clone of the user's repository, patch series
applied as commits, and the worktree builds are made from.

The user's repository is only ever read (``rev-parse``, ``format-patch``,
and as the source of a local clone/fetch): its checkout, branch, index and
working files are never touched.  Everything we write lives in a bare clone
under the cache (objects hard-linked, so it is cheap) and in a worktree of
that clone.

Patches are applied with ``git am`` semantics but without a working tree:
``mailsplit`` and ``mailinfo`` read each message, ``apply --cached`` applies
it to a private index, and ``commit-tree`` records it with the author, date
and message of the mail.  The committer is fixed, so the same patches on the
same base always give the same commit ids.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import git

from .errors import ConfigError, GitTimedOut, InfraError, StageError
from .paths import cache_dir, locked, short_hash, slug

log = logging.getLogger(__name__)

COMMITTER = {"GIT_COMMITTER_NAME": "kvariant", "GIT_COMMITTER_EMAIL": "kvariant@localhost"}
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".mbx", ".eml")  # .mbx: b4 am
GIT_TIMEOUT = 300.0  # seconds: any git command on a repository
GIT_LONG_TIMEOUT = 3600.0  # clone, fetch and checkout of a whole kernel tree


@dataclasses.dataclass
class AppliedPatch:
    subject: str
    source: str  # file (and message number) it came from
    commit: str
    patch_id: str
    author: str = ""


def run_git(where: git.Repo | git.Git, command: str, *args: Any, timeout: float = GIT_TIMEOUT,
            **kwargs: Any) -> Any:
    """The one way kvariant runs git: ``where.git.<command>(*args,
    **kwargs)`` (GitPython's execute options: env, istream,
    stdout_as_string...), its command line logged first.  Past *timeout*
    seconds git and its children are killed and GitTimedOut names the
    command; git's own failures stay GitCommandError."""
    cmd = where.git if isinstance(where, git.Repo) else where
    cmdline = shlex.join(["git", "-C", str(cmd.working_dir), command.replace("_", "-"), *map(str, args)])
    log.debug("$ %s", cmdline)
    start = time.monotonic()
    try:
        return getattr(cmd, command)(*args, kill_after_timeout=timeout, **kwargs)
    except git.GitCommandError:
        if time.monotonic() - start >= timeout:
            raise GitTimedOut(cmdline, timeout) from None
        raise


def is_git_repo(path: Path) -> bool:
    try:
        git.Repo(path)
        return True
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False


def git_reason(error: git.GitCommandError) -> str:
    """git's own first line of complaint ("detected dubious ownership in
    repository at ..."), without its "fatal: " prefix; "" when it said
    nothing."""
    text = re.sub(r"^\s*stderr: '", "", str(error.stderr or "")).rstrip("'\n ")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return re.sub(r"^(fatal|error): ", "", first)


def resolve_rev(tree: Path, rev: str) -> str | None:
    """The commit *rev* names in *tree*, or None when there is none.
    Read-only.  When git refuses the tree itself (another user's tree:
    "dubious ownership"), raises ConfigError with git's reason."""
    try:
        return run_git(git.Repo(tree), "rev_parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except git.GitCommandError as e:
        reason = git_reason(e)
        if reason:
            raise ConfigError(tree, "", f"git refuses to read this tree: {reason}") from None
        return None


class Mirror:
    """A bare clone of the user's tree that belongs to us."""

    def __init__(self, user_tree: Path):
        self.user_tree = Path(user_tree).expanduser().resolve()
        self.key = f"{slug(self.user_tree.name)}-{short_hash(str(self.user_tree), length=8)}"
        self.path = cache_dir() / "repos" / f"{self.key}.git"
        self.src = cache_dir() / "src" / self.key

    def repo(self) -> git.Repo:
        with locked(f"repo-{self.key}"):
            if not (self.path / "HEAD").exists():
                log.info("cloning %s into %s", self.user_tree, self.path)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                run_git(git.Git(str(self.path.parent)), "clone", "--bare", "--quiet", "--",
                        str(self.user_tree), str(tmp), timeout=GIT_LONG_TIMEOUT)
                tmp.rename(self.path)
            return git.Repo(self.path)

    def has(self, sha: str) -> bool:
        try:
            run_git(self.repo(), "cat_file", "-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def fetch(self, sha: str) -> None:
        """Make *sha* (a commit of the user's tree) present in the clone."""
        if self.has(sha):
            return
        repo = self.repo()
        with locked(f"repo-{self.key}"):
            run_git(repo, "fetch", "--quiet", "--no-tags", str(self.user_tree),
                    "+refs/heads/*:refs/user/heads/*", "+refs/tags/*:refs/user/tags/*",
                    timeout=GIT_LONG_TIMEOUT)
        if not self.has(sha):
            with locked(f"repo-{self.key}"):
                run_git(repo, "fetch", "--quiet", str(self.user_tree), sha, timeout=GIT_LONG_TIMEOUT)
        if not self.has(sha):
            raise InfraError(f"{self.user_tree}: commit {sha} could not be fetched into {self.path}")

    def keep(self, ref: str, sha: str) -> None:
        """A ref so that commits we made are not garbage-collected."""
        run_git(self.repo(), "update_ref", ref, sha)

    def checkout(self, sha: str, worktree: Path | None = None) -> Path:
        """Check *sha* out in one of our build worktrees (default: the
        first one, ``src/<key>``); only files that differ are rewritten, so
        ``make`` rebuilds only what they feed.  Callers hold the worktree's
        lock (see build.py) while they use it."""
        src = worktree or self.src
        repo = self.repo()
        if not (src / ".git").exists():
            shutil.rmtree(src, ignore_errors=True)
            src.parent.mkdir(parents=True, exist_ok=True)
            with locked(f"repo-{self.key}"):
                run_git(repo, "worktree", "prune")
                run_git(repo, "worktree", "add", "--detach", "--quiet", str(src), sha,
                        timeout=GIT_LONG_TIMEOUT)
        else:
            wt = git.Repo(src)
            run_git(wt, "checkout", "--quiet", "--force", "--detach", sha, timeout=GIT_LONG_TIMEOUT)
            run_git(wt, "clean", "-fdxq", timeout=GIT_LONG_TIMEOUT)
        return src


# ---------------------------------------------------------------- patches

def patch_files(spec: Path) -> list[Path]:
    """The files a ``patches`` entry names: a file, or a directory of them."""
    if spec.is_dir():
        files = sorted(p for p in spec.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
        return files
    return [spec]


def series_file_name(ref: str) -> str:
    """The mbox file of ``git:REF``: a slug of the ref for the eye, and a
    hash of the ref itself so that refs with the same slug (``topic/x``,
    ``topic-x``) never share a file."""
    return f"git-{slug(ref)}-{short_hash(ref, length=8)}.mbox"


def series_from_ref(tree: Path, base: str, ref: str, out: Path) -> Path:
    """``git:REF``: the commits base..REF of the user's tree as an mbox.
    No commit there is a StageError: the variant would be the base under
    another name."""
    mbox = out / series_file_name(ref)
    try:
        data = run_git(git.Repo(tree), "format_patch", "--stdout", "--no-signature", f"{base}..{ref}",
                       stdout_as_string=False)
    except git.GitCommandError as e:
        raise StageError(f"git:{ref}: git format-patch failed: {git_reason(e) or e}",
                         detail=str(e.stderr or "")) from None
    if not data.strip():
        raise StageError(f"git:{ref}: no commit between the base and {ref}: no diff found in "
                         f"{mbox.name}")
    mbox.write_bytes(data + b"\n")
    return mbox


def _parse_mailinfo(text: str) -> dict[str, str]:
    info = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            info[k.strip()] = v.strip()
    return info


def rejected_hunk(error: str, patch_text: str, limit: int = 40) -> str:
    """The hunk ``git apply`` names in "patch failed: FILE:LINE", from the patch."""
    m = re.search(r"patch failed: (.+):(\d+)", error)
    if not m:
        return ""
    path, line = m.group(1), m.group(2)
    lines = patch_text.splitlines()
    in_file = False
    for i, l in enumerate(lines):
        if l.startswith("+++ "):
            in_file = l[4:].split("/", 1)[-1] == path
        elif in_file and l.startswith(f"@@ -{line},") or in_file and l.startswith(f"@@ -{line} "):
            hunk = [l]
            for nxt in lines[i + 1:]:
                if nxt.startswith(("@@", "diff --git", "--- ", "-- ")) and len(hunk) > 1:
                    break
                hunk.append(nxt)
            return "\n".join(hunk[:limit])
    return ""


def mail_text(data: bytes) -> str:
    """A mail's text as ``git mailinfo`` leaves it: UTF-8 when the mail
    names its charset (mailinfo re-codes it), else the bytes as they came.
    Those are read as UTF-8 when they are, and as latin-1 (the usual legacy
    charset, which reads any byte) when they are not; ``git am`` would keep
    such bytes verbatim in the commit, we record them as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def why_no_diff(path: Path, messages: int, mails: int) -> str:
    """Why a patch file gave no commit, in words: *messages* is what
    ``mailsplit`` found in it, *mails* how many of them had mail headers."""
    head = path.read_bytes()[:65536]
    if not head.strip():
        return "the file is empty"
    if b"\0" in head:
        return "a binary file, not a patch"
    if messages and not mails:
        return "plain text without a diff"
    return f"{mails} mail(s) without a diff (cover letters only)"


@dataclasses.dataclass
class _Mail:
    info: dict[str, str]
    body: str
    diff: Path


class _Series:
    """Messages applied one by one on a private index; see apply_series."""

    def __init__(self, repo: git.Repo, tmp: Path, base: str):
        self.repo, self.tmp, self.parent = repo, tmp, base
        self.env = {"GIT_INDEX_FILE": str(tmp / "index"), **COMMITTER}
        self.applied: list[AppliedPatch] = []
        run_git(repo, "read_tree", base, env=self.env)

    def split(self, f: Path, fileno: int) -> list[Path]:
        out = self.tmp / f"split{fileno}"
        out.mkdir()
        if not f.read_bytes().strip():
            return []  # mailsplit refuses it; why_no_diff says why
        try:
            count = int(run_git(self.repo, "mailsplit", "-b", f"-o{out}", str(f)) or 0)
        except git.GitCommandError as e:
            raise StageError(f"{f}: not a patch or mbox file", detail=str(e.stderr or "")) from None
        return [out / f"{n:04d}" for n in range(1, count + 1)]

    def read(self, mail: Path) -> _Mail:
        msg, diff = self.tmp / "msg", self.tmp / "patch"
        with open(mail, "rb") as stdin:
            out = run_git(self.repo, "mailinfo", str(msg), str(diff), istream=stdin, stdout_as_string=False)
        return _Mail(_parse_mailinfo(mail_text(out)), mail_text(msg.read_bytes()).strip(), diff)

    def commit(self, m: _Mail, f: Path, source: str) -> None:
        subject = m.info.get("Subject") or f.stem
        try:
            run_git(self.repo, "apply", "--cached", str(m.diff), env=self.env)
        except git.GitCommandError as e:
            err = str(e.stderr or "").strip()
            hunk = rejected_hunk(err, m.diff.read_text(errors="replace"))
            raise StageError(
                f"patch does not apply: {source}: {subject}",
                detail=err + ("\n\nrejected hunk:\n" + hunk if hunk else ""),
                reproduce=f"git -C <tree> checkout {self.parent} && git am {f}",
            ) from None
        tree_sha = run_git(self.repo, "write_tree", env=self.env)
        date = m.info.get("Date") or "@0 +0000"
        author_env = {
            "GIT_AUTHOR_NAME": m.info.get("Author") or "unknown",
            "GIT_AUTHOR_EMAIL": m.info.get("Email") or "unknown@localhost",
            "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, **COMMITTER,
        }
        message = subject + ("\n\n" + m.body if m.body else "") + "\n"
        (self.tmp / "message").write_text(message, encoding="utf-8")
        self.parent = run_git(self.repo, "commit_tree", tree_sha, "-p", self.parent, "-F",
                              str(self.tmp / "message"), env={**os.environ, **author_env})
        with open(m.diff, "rb") as stdin:
            pid = run_git(self.repo, "patch_id", "--stable", istream=stdin).split()
        self.applied.append(AppliedPatch(subject=subject, source=source, commit=self.parent,
                                         patch_id=pid[0] if pid else "",
                                         author=f"{m.info.get('Author', '')} <{m.info.get('Email', '')}>"))


def apply_series(mirror: Mirror, base: str, files: list[Path], identity: str) -> list[AppliedPatch]:
    """Apply each message of *files* in order on *base*; return one entry per
    commit made.  Raises StageError naming the patch and its rejected hunk,
    or naming a file that gave no commit ("no diff found in FILE: a binary
    file...").  A file of cover letters only is skipped when other files
    give commits (a series' 0000-cover-letter.patch)."""
    repo = mirror.repo()
    empty: list[tuple[Path, str, bool]] = []  # file, why, cover letters only
    with tempfile.TemporaryDirectory(prefix="kvariant-am-") as tmpdir:
        series = _Series(repo, Path(tmpdir), base)
        for fileno, f in enumerate(Path(x).resolve() for x in files):
            mails = series.split(f, fileno)
            before, headed = len(series.applied), 0
            for n, mail in enumerate(mails, 1):
                m = series.read(mail)
                headed += bool(m.info.get("Author") or m.info.get("Subject"))
                source = f"{f.name}" + (f" (message {n})" if len(mails) > 1 else "")
                if not m.diff.read_bytes().strip():
                    log.info("%s: no diff (a cover letter?), skipped", source)
                    continue
                series.commit(m, f, source)
            if len(series.applied) == before:
                empty.append((f, why_no_diff(f, len(mails), headed), bool(mails) and headed == len(mails)))
    for f, why, covers in empty:
        if not (covers and series.applied):
            raise StageError(f"no diff found in {f}: {why}",
                             detail="a variant's patch files must each hold at least one diff "
                                    "(git format-patch, git diff, b4 am); a cover letter is "
                                    "skipped only beside the patches it introduces")
    if series.applied:
        mirror.keep(f"refs/kvariant/{identity}", series.parent)
    return series.applied
