"""pipeline.toml -> frozen dataclasses.

Every key has a default except the variants.  Relative paths are relative to
the config file.  Anything wrong stops here, before any work, with a
ConfigError naming the file, the key and what was expected.

``schema``: the dataclasses; ``reader``: typed keys of one table;
``checks``: the documented ranges and fio's strings (pure); ``sections``:
one reader per section; ``loader``: the file, profiles, fragments, variants.
"""

from . import checks
from .loader import (SECTIONS, check_sections, load, load_data, read_toml, select_variants,
                   tree_source, with_fragment, with_profile)
from .reader import DURATION, parse_duration
from .schema import (DEBUG_FRAGMENT, DEFAULT_FRAGMENT, SLUG, VMCONFIGS, Config, CorrectnessConfig, FioConfig,
                     FuseConfig, KernelConfig, KernelSource, NullBlkConfig, PatchSpec, Timeouts, Variant,
                     VmConfig, XFSTESTS_FSTYPES, XfstestsConfig)
from .sections import xfstests_config_from_table

__all__ = [
    "checks",
    "SECTIONS", "check_sections", "load", "load_data", "read_toml", "select_variants",
    "tree_source", "with_fragment", "with_profile",
    "DURATION", "parse_duration",
    "DEBUG_FRAGMENT", "DEFAULT_FRAGMENT", "SLUG", "VMCONFIGS", "Config", "CorrectnessConfig", "FioConfig", "FuseConfig",
    "KernelConfig", "KernelSource", "NullBlkConfig", "PatchSpec", "Timeouts", "Variant", "VmConfig",
    "XFSTESTS_FSTYPES", "XfstestsConfig",
    "xfstests_config_from_table",
]
