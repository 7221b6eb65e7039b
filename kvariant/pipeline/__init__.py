"""A run as code: run.py (the variants one after the other), variant.py
(one variant's stages and workloads, each a testcase), stages.py (apply,
build, boot, storage), fio_workload.py and xfstests_workload.py (the
workloads), outcome.py (the pure rules that turn an exception and the
kernel's messages into a status) and recorder.py (the one writer of JUnit
and summary.json)."""
