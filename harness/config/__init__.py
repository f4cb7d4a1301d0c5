"""Sweep files: the schema, `--set` overrides, validation with clear errors, and grid expansion.

A sweep file is one run's config (dataset, model, loss, optimizer, ...) plus `seeds` and a `grid`
that maps dotted keys to lists of values (their cartesian product), or a list of such maps (the
union of their products, in order). `load_sweep` validates the base config and every grid point
once, at load; what comes out is a `Sweep` whose `trials` are fully validated `RunConfig`s, each
with a stable, readable `trial_id`. No training and no I/O but reading the file.

    errors.py         ConfigError (one line: file or --set, key, what is allowed), ArgParser
    yaml_file.py      read_yaml: the file's mapping, duplicate keys and bad encodings caught
    schema.py         the pydantic sections and RunConfig; names and task rules from harness.registry
    model_options.py  the types model options take (PositiveInt, Widths, ...) and their check
    dotted.py         flatten, set_dotted
    overrides.py      --set KEY=VALUE, known_key (did-you-mean over the schema's keys)
    validate.py       validate_run: pydantic's errors as one line
    naming.py         trial_id, short_name, format_value (what the report needs)
    grid.py           Trial (id, point, config), Sweep, build_sweep, load_sweep, grid_size

Every problem is a `ConfigError`; the CLIs print it as `error: ...` and exit 2. Whether each model
can run on its dataset's inputs is checked afterwards, before any trial starts, by harness.preflight.
"""

from __future__ import annotations

from harness.config.dotted import flatten, set_dotted
from harness.config.errors import ArgParser, ConfigError
from harness.config.grid import Sweep, Trial, build_sweep, grid_size, load_sweep
from harness.config.naming import format_value, short_name, trial_id
from harness.config.overrides import known_key, parse_override
from harness.config.schema import (
    TASKS,
    DatasetConfig,
    EarlyStoppingConfig,
    HealthConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    ResourcesConfig,
    RunConfig,
    SchedulerConfig,
    Section,
    SegmentationConfig,
    Stage,
    TrainConfig,
    TuneConfig,
)
from harness.config.validate import validate_run
from harness.config.yaml_file import read_yaml

__all__ = ["ArgParser", "ConfigError", "DatasetConfig", "EarlyStoppingConfig", "HealthConfig", "LossConfig",
           "ModelConfig", "OptimizerConfig", "ResourcesConfig", "RunConfig", "SchedulerConfig", "Section",
           "SegmentationConfig", "Stage", "Sweep", "TASKS", "TrainConfig", "Trial", "TuneConfig", "build_sweep",
           "flatten", "format_value", "grid_size", "known_key", "load_sweep", "parse_override", "read_yaml",
           "set_dotted", "short_name", "trial_id", "validate_run"]
