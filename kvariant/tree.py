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
import shutil
import tempfile
from pathlib import Path

import git

from .errors import InfraError, StageError
from .paths import cache_dir, locked, short_hash, slug

log = logging.getLogger(__name__)

COMMITTER = {"GIT_COMMITTER_NAME": "kvariant", "GIT_COMMITTER_EMAIL": "kvariant@localhost"}
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".mbx", ".eml")  # .mbx: b4 am


@dataclasses.dataclass
class AppliedPatch:
    subject: str
    source: str  # file (and message number) it came from
    commit: str
    patch_id: str
    author: str = ""


def is_git_repo(path: Path) -> bool:
    try:
        git.Repo(path)
        return True
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False


def resolve_rev(tree: Path, rev: str) -> str | None:
    """The commit *rev* names in *tree*, or None.  Read-only."""
    try:
        return git.Repo(tree).git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")
    except git.GitCommandError:
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
                git.Repo.clone_from(str(self.user_tree), str(tmp), bare=True)
                tmp.rename(self.path)
            return git.Repo(self.path)

    def has(self, sha: str) -> bool:
        try:
            self.repo().git.cat_file("-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def fetch(self, sha: str) -> None:
        """Make *sha* (a commit of the user's tree) present in the clone."""
        if self.has(sha):
            return
        repo = self.repo()
        with locked(f"repo-{self.key}"):
            repo.git.fetch("--quiet", "--no-tags", str(self.user_tree),
                           "+refs/heads/*:refs/user/heads/*", "+refs/tags/*:refs/user/tags/*")
        if not self.has(sha):
            with locked(f"repo-{self.key}"):
                repo.git.fetch("--quiet", str(self.user_tree), sha)
        if not self.has(sha):
            raise InfraError(f"{self.user_tree}: commit {sha} could not be fetched into {self.path}")

    def keep(self, ref: str, sha: str) -> None:
        """A ref so that commits we made are not garbage-collected."""
        self.repo().git.update_ref(ref, sha)

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
                repo.git.worktree("prune")
                repo.git.worktree("add", "--detach", "--quiet", str(src), sha)
        else:
            wt = git.Repo(src)
            wt.git.checkout("--quiet", "--force", "--detach", sha)
            wt.git.clean("-fdxq")
        return src


# ---------------------------------------------------------------- patches

def patch_files(spec: Path) -> list[Path]:
    """The files a ``patches`` entry names: a file, or a directory of them."""
    if spec.is_dir():
        files = sorted(p for p in spec.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
        return files
    return [spec]


def series_from_ref(tree: Path, base: str, ref: str, out: Path) -> Path:
    """``git:REF``: the commits base..REF of the user's tree as an mbox."""
    mbox = out / f"git-{slug(ref)}.mbox"
    text = git.Repo(tree).git.format_patch("--stdout", "--no-signature", f"{base}..{ref}")
    mbox.write_text(text + ("\n" if text else ""))
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


def apply_series(mirror: Mirror, base: str, files: list[Path], identity: str) -> list[AppliedPatch]:
    """Apply each message of *files* in order on *base*; return one entry per
    commit made.  Raises StageError naming the patch and its rejected hunk."""
    repo = mirror.repo()
    applied: list[AppliedPatch] = []
    parent = base
    with tempfile.TemporaryDirectory(prefix="kvariant-am-") as tmpdir:
        tmp = Path(tmpdir)
        env = {"GIT_INDEX_FILE": str(tmp / "index"), **COMMITTER}
        repo.git.read_tree(parent, env=env)
        for fileno, f in enumerate(Path(x).resolve() for x in files):
            split = tmp / f"split{fileno}"
            split.mkdir()
            try:
                count = int(repo.git.mailsplit("-b", f"-o{split}", str(f)) or 0)
            except git.GitCommandError as e:
                raise StageError(f"{f}: not a patch or mbox file", detail=e.stderr)
            for n in range(1, count + 1):
                mail = split / f"{n:04d}"
                msg, diff = tmp / "msg", tmp / "patch"
                with open(mail, "rb") as stdin:
                    out = repo.git.mailinfo(str(msg), str(diff), istream=stdin)
                info = _parse_mailinfo(out)
                source = f"{f.name}" + (f" (message {n})" if count > 1 else "")
                if not diff.read_text(errors="replace").strip():
                    log.info("%s: no diff (a cover letter?), skipped", source)
                    continue
                subject = info.get("Subject") or f.stem
                try:
                    repo.git.apply("--cached", str(diff), env=env)
                except git.GitCommandError as e:
                    err = (e.stderr or "").strip()
                    hunk = rejected_hunk(err, diff.read_text(errors="replace"))
                    raise StageError(
                        f"patch does not apply: {source}: {subject}",
                        detail=err + ("\n\nrejected hunk:\n" + hunk if hunk else ""),
                        reproduce=f"git -C <tree> checkout {parent} && git am {f}",
                    )
                tree_sha = repo.git.write_tree(env=env)
                author_env = {
                    "GIT_AUTHOR_NAME": info.get("Author") or "unknown",
                    "GIT_AUTHOR_EMAIL": info.get("Email") or "unknown@localhost",
                    **({"GIT_AUTHOR_DATE": info["Date"], "GIT_COMMITTER_DATE": info["Date"]}
                       if info.get("Date") else {"GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"}),
                    **COMMITTER,
                }
                body = msg.read_text(errors="replace").strip()
                message = subject + ("\n\n" + body if body else "") + "\n"
                with open(tmp / "message", "w") as mf:
                    mf.write(message)
                parent = repo.git.commit_tree(tree_sha, "-p", parent, "-F", str(tmp / "message"),
                                              env={**os.environ, **author_env})
                with open(diff, "rb") as stdin:
                    pid = repo.git.patch_id("--stable", istream=stdin).split()
                applied.append(AppliedPatch(subject=subject, source=source, commit=parent,
                                            patch_id=pid[0] if pid else "",
                                            author=f"{info.get('Author', '')} <{info.get('Email', '')}>"))
    if applied:
        mirror.keep(f"refs/kvariant/{identity}", parent)
    return applied
