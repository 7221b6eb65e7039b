"""report.json, for machines."""

from __future__ import annotations

import json

from ..comparison import Comparison


def comparison_json(c: Comparison) -> str:
    """report.json, for machines.  Keys (stable; ``schema`` changes when they do):

    - ``schema``: "kvariant-compare/1"; ``threshold`` (fraction, 0.05 = 5%),
      ``confidence`` (0.95), ``change_of``: "mean", ``reference``: a label;
    - ``runs``: [{run_id, path, accel (kvm|tcg|?), accel_reason, started,
      finished, interrupted}];
    - ``variants``: [{label ("name", or "RUNID:name" with several runs),
      run_id, name, status, base, commit, accel, stages {apply, build, boot,
      storage: pass|fail|error|skip|-}, failed [{name, status, message}],
      patches [{subject, patch_id, commit, source}]}];
    - ``pairs``: [{a, b, kind}]: B compared against A; kind "reference",
      "in-run" (against the first variant of B's run) or "same-name" (the
      same variant in an earlier run);
    - ``fio``: [{target, job, numjobs, testcase, samples {label: {runs, n,
      mean, median, sd, half_width, ci_low, ci_high}}, status {label:
      status}, notes [str], deltas [{a, b, kind, diff, change_pct, df,
      half_width, ci_low, ci_high, ci_low_pct, ci_high_pct, verdict,
      reason, method}], control_runs {label: [IOPS]}, boots {label: [guest
      of each run]}, rounds {label: [cohort, [round of each run]]}}];
      method names how the interval was computed: "paired by round
      (guests up together), t on log ratios" where both sides' guests were
      up together and ran the same rounds (comparison.PAIRED and the other
      constants beside it), else "Welch t on runs", or, where both sides
      were measured in interleaved rounds and normalising was asked for,
      "normalised by the control run beside each run" (control_runs: the
      raw-XFS runs, run i beside the target's run i); IOPS in ops/s, ``*_pct`` in percent of A's mean; values
      that do not exist (one run) are null; verdict is one of better, worse,
      no change, not significant, inconclusive, not compared (runs whose
      setups differ, without --force);
    - ``xfstests``: {counts {fstype: {label: {passed, failed, skipped,
      errors}}}, deltas [{fstype, a, b, kind, new_failures, fixed, now_run,
      no_longer_run, other: [{test, a, b, message}]}]} (statuses pass, fail,
      error, skip, missing);
    - ``patch_changes``: [{a, b, unchanged [patch], changed [{subject,
      old_subject, old_patch_id, patch_id}], reworded [same], added [patch],
      removed [patch]}];
    - ``regressions``: [{variant, testcase, message}] (:func:`regressions`);
    - ``notes``: [str].

    ``Comparison.from_dict(json.loads(text))`` gives the comparison back.
    """
    return json.dumps(c.to_dict(), indent=2, sort_keys=False) + "\n"

