"""The types a model factory annotates its options with (`widths: Widths`, `dropout: Probability`), which a
sweep file's values are checked against when it loads. They live with the check, in
harness.config.model_options; a factory imports them from here."""

from harness.config.model_options import (  # noqa: F401 - re-exported: the names a factory author imports
    NOT_OPTIONS,
    ChannelPairs,
    NonNegativeInt,
    OptionError,
    PositiveInt,
    Probability,
    Widths,
    describe,
    option_types,
    validate_options,
)
