"""A passthrough FUSE server speaking the raw /dev/fuse protocol (standard library only).

Run it as ``python3 -m kvariant.fuse SOURCE MOUNTPOINT``; the API is in
:mod:`kvariant.fuse.server` (``serve``, ``server_argv``, ``read_stats``).
"""
