"""Where a results table's trials came from, for the report's header: the code version, the library
versions, the device and host, and the sweep file each trial ran (the trials columns
harness.provenance records), and a warning where one table mixes them.

    provenance_line(results)      # "Code 95a0302 (dirty), torch 2.14.1 (CUDA 13.0, cuDNN 9.24.0), ..."
    provenance_warnings(results)  # ["Trials ran on 2 devices (cpu, NVIDIA H100 80GB HBM3): throughput ..."]
    provenance_table(results)     # one row per distinct combination, with its number of trials

The code version is the git commit (7 hex digits shown; "(dirty)" when tracked files had uncommitted
changes), else the installed harness version. Results written before these columns existed (or rows
without them: a trial killed from outside gets its row from the sweep driver) show "–" and count in no
warning: only known values are compared.
"""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from harness.report.results import Results
from harness.report.tables import Table, missing, view

FIELDS = ["code_commit", "code_dirty", "harness_version", "torch_version", "cuda_version", "cudnn_version",
          "accelerate_version", "ray_version", "device", "host", "sweep_hash"]  # the table's grouping, in order
SHORT_COMMIT = 7


def _values(trials: pd.DataFrame, column: str) -> list[Any]:
    """A trials column as plain values, missing ones (and a column old results lack) None."""
    if column not in trials:
        return [None] * len(trials)
    return [None if missing(v) else v for v in trials[column]]


def _dirty(value: Any) -> Optional[bool]:
    return None if value is None else bool(value)


def code_version(commit: Any, dirty: Any, version: Any) -> Optional[str]:
    """'95a0302', '95a0302 (dirty)', 'harness 0.1.0' (not a git checkout), or None (not recorded)."""
    if commit:
        return str(commit)[:SHORT_COMMIT] + (" (dirty)" if _dirty(dirty) else "")
    if version:
        return f"harness {version}"
    return None


def cudnn_label(value: Any) -> Optional[str]:
    """torch.backends.cudnn.version() as recorded ('92400') as a version: '9.24.0' (cuDNN 9 and later:
    major x 10000 + minor x 100 + patch; before: major x 1000 + minor x 100 + patch)."""
    if value is None:
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        return str(value)
    major, rest = divmod(v, 10000) if v >= 90000 else divmod(v, 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def _frame(results: Results) -> dict[str, list]:
    """The trials' provenance columns as lists (plain values: pandas would turn a None into NaN), missing
    values None; `code`: the code version label."""
    frame = {f: _values(results.trials, f) for f in FIELDS}
    frame["code_dirty"] = [_dirty(v) for v in frame["code_dirty"]]
    frame["code"] = [code_version(c, d, v) for c, d, v in
                     zip(frame["code_commit"], frame["code_dirty"], frame["harness_version"])]
    return frame


def _distinct(values) -> list:
    """The known values, each once, in order of appearance."""
    return list(dict.fromkeys(v for v in values if v is not None))


def provenance_table(results: Results) -> Table:
    """One row per distinct (code version, torch, CUDA, cuDNN, accelerate, ray, device, host, sweep file)
    with its number of trials, in order of first appearance; "–" where a trial recorded no value."""
    frame = _frame(results)
    keys = ["code", *FIELDS]
    counts: dict[tuple, int] = {}
    for key in zip(*(frame[k] for k in keys)):
        counts[key] = counts.get(key, 0) + 1
    data = pd.DataFrame([[*key, n] for key, n in counts.items()], columns=[*keys, "trials"], dtype=object)
    data["trials"] = data["trials"].astype(int)
    shown = data.assign(cudnn_version=[cudnn_label(key[keys.index("cudnn_version")]) for key in counts])
    columns = {"code": "Code", "torch_version": "torch", "cuda_version": "CUDA", "cudnn_version": "cuDNN",
               "accelerate_version": "accelerate", "ray_version": "ray", "device": "Device", "host": "Host",
               "sweep_hash": "Sweep file", "trials": "Trials"}
    note = ("Code: the git commit the harness ran from (\"(dirty)\": tracked files had uncommitted changes), "
            "else the installed harness version. Sweep file: the first 16 hex digits of the sha256 of the "
            "results directory's `sweep.yaml`, the copy of the sweep file the sweep ran. "
            "\"–\": not recorded (results from an older harness, or a trial killed before it wrote its row).")
    return Table("provenance", "Provenance", data, view(shown, columns), note)


def provenance_warnings(results: Results) -> list[str]:
    """One sentence per way the trials are not alike: more than one code version (commit or dirty tree),
    trials on a dirty tree, more than one device, sweep file or torch version. Empty when they are."""
    frame = _frame(results)
    warnings = []
    codes = _distinct(frame["code"])
    if len(codes) > 1:
        warnings.append(f"Trials ran on {len(codes)} code versions ({', '.join(codes)}): differences between "
                        "them may come from the code, not the configs.")
    dirty = int(sum(d is True for d in frame["code_dirty"]))
    if dirty:
        total = len(frame["code"])
        of = "all" if dirty == total else f"{dirty} of {total}"
        warnings.append(f"{of.capitalize()} trials ran on a dirty tree (uncommitted changes to tracked files): "
                        "their commit does not say exactly what code ran.")
    mixed = [("device", "devices", "throughput across devices is not comparable"),
             ("sweep_hash", "different sweep files", "the sweep file changed between runs into this results directory"),
             ("torch_version", "torch versions", "speed and numerics may differ between them")]
    for column, what, why in mixed:
        values = _distinct(frame[column])
        if len(values) > 1:
            warnings.append(f"Trials ran {'from' if column == 'sweep_hash' else 'on'} {len(values)} {what} "
                            f"({', '.join(map(str, values))}): {why}.")
    return warnings


def provenance_line(results: Results) -> str:
    """One sentence for a report's header: 'Code 95a0302 (dirty), torch 2.14.1 (CUDA 13.0, cuDNN 9.24.0),
    accelerate 1.15.0, ray 2.60.0, on cpu @ host1.' A part with more than one value says so ('torch
    mixed', 'on 2 devices'), and the sentence ends '(mixed: see Provenance)'."""
    frame = _frame(results)
    mixed = False

    def one(column: str, label=lambda v: v) -> Optional[str]:
        nonlocal mixed
        values = _distinct(label(v) if v is not None else None for v in frame[column])
        if len(values) > 1:
            mixed = True
            return "mixed"
        return str(values[0]) if values else None

    code, torch_v, accelerate, ray = one("code"), one("torch_version"), one("accelerate_version"), one("ray_version")
    cuda, cudnn = one("cuda_version"), one("cudnn_version", cudnn_label)
    devices, hosts = _distinct(frame["device"]), _distinct(frame["host"])
    mixed = mixed or len(devices) > 1 or len(hosts) > 1 or len(_distinct(frame["sweep_hash"])) > 1
    parts = []
    if code:
        parts.append(f"Code {code}")
    if torch_v:
        build = ", ".join(p for p in (cuda and f"CUDA {cuda}", cudnn and f"cuDNN {cudnn}") if p)
        parts.append(f"torch {torch_v}" + (f" ({build})" if build else ""))
    if accelerate:
        parts.append(f"accelerate {accelerate}")
    if ray:
        parts.append(f"ray {ray}")
    where = " ".join(p for p in (
        devices and ("on " + (str(devices[0]) if len(devices) == 1 else f"{len(devices)} devices")),
        hosts and ("@ " + (str(hosts[0]) if len(hosts) == 1 else f"{len(hosts)} hosts"))) if p)
    if where:
        parts.append(where)
    if not parts:
        return "Provenance not recorded (results from an older harness)."
    line = ", ".join(parts)
    line = line[0].upper() + line[1:]
    return line + (" (mixed: see Provenance)." if mixed else ".")
