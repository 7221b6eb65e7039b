#!/usr/bin/env python3
"""kvariant: build, boot and test kernel patch variants side by side.

    ./pipeline.py run [--config FILE] [--results DIR] [--run-id ID] [--variant NAME ...]

Runs with the project's virtualenv (.venv, made by ./setup.sh) whichever
python3 started it.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"

if (VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != VENV.resolve():
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])

sys.path.insert(0, str(HERE))

from kvariant.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
