"""xfstests: configuration, guest scripts, ``./check`` argv builders, the
result parser, and the runner that drives them in a guest.

Two file system types.  ``xfs``: XFS on two null_blk devices (test and
scratch), the reference.  ``fuse``: our passthrough server (kvariant.fuse)
over directories of XFS mounts on the same two devices, mounted by xfstests
itself through a ``mount.fuse.kvariant`` helper installed in the guest's RAM
overlay: ``FSTYP=fuse FUSE_SUBTYP=.kvariant`` makes xfstests run ``mount -t
fuse.kvariant SRC MNT -o OPTS``, mount(8) runs the helper, and the helper
starts the server in daemon mode on SRC's source directory with ``--fsname
SRC``.  The server mounts plain type ``fuse`` (xfstests compares the type
``df -T`` shows with FSTYP) and the mount source is SRC exactly (xfstests
finds its mounts with ``findmnt -S $TEST_DEV``).  TEST_DEV and SCRATCH_DEV
are tags (``kvariant-test``), not the directories themselves: xfstests
unmounts with ``umount $SCRATCH_DEV``, and umount(8) takes an existing
directory for a mount point ("not mounted"); the helper maps each tag to its
directory (upstream's README.fuse uses tags and ``-o source=DIR`` the same
way; the helper takes that too).

Tests run in ``./check`` batches (one call for all of them unless a test
hangs), each test under a deadline the host enforces by following check's
output: a test past it is an ERROR with the guest's blocked tasks, check is
stopped, the mounts are torn down (FUSE connections aborted), and the next
tests go on in a new ``./check``; results already fetched stay on the host
when the guest dies.  The kernel log of each test
is scanned for splats (warnings, oopses, lockdep, KASAN, hung tasks, RCU
stalls): one fails the test even when its output matched.
"""

from ...splats import find_splats, scan_splats, splat_excerpt
from ...config import XfstestsConfig, xfstests_config_from_table
from .config import CHECK_OVERHEAD, FSTYPES, tree_problem
from .guest import (GuestLayout, batch_argv, check_argv, guest_layout, guest_setup_script,
                    guest_teardown_script, list_argv, local_config, mount_helper_script,
                    parse_test_list, single_test_argv)
from .progress import CheckProgress, batch_command, kmsg_slice, next_batch, stop_command
from .results import (TestOutcome, outcome_to_stage, parse_check_log, parse_check_time,
                      parse_results)
from .run import run_xfstests
from ...tally import summarize

__all__ = [
    "find_splats", "scan_splats", "splat_excerpt",
    "CHECK_OVERHEAD", "FSTYPES", "XfstestsConfig", "tree_problem", "xfstests_config_from_table",
    "CheckProgress", "batch_command", "kmsg_slice", "next_batch", "stop_command",
    "GuestLayout", "batch_argv", "check_argv", "guest_layout", "guest_setup_script", "guest_teardown_script",
    "list_argv", "local_config", "mount_helper_script", "parse_test_list", "single_test_argv",
    "TestOutcome", "outcome_to_stage", "parse_check_log", "parse_check_time", "parse_results",
    "run_xfstests", "summarize",
]
