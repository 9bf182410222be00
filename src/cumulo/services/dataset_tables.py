"""Reading tabular datasets in chunks: schema, profile, first rows, drift between versions.

Nothing here holds a whole file: a parquet file is read one row group batch at
a time (pyarrow), a delimited file one chunk of rows at a time (pandas), so a
file larger than memory is profiled in bounded memory. The profile takes two
passes: counts, ranges, means and distinct values first, then a histogram of
each numeric column over the range the first pass found.

Drift compares two versions column by column: columns added, removed or of
another type, and for the others the population stability index (PSI) of
their distributions (numeric columns over shared equal-width bins, others over
their values) and, for numeric columns, the Wasserstein distance of the binned
distributions as a share of the range. A column drifted when its PSI is over
the threshold (0.2 by default, the usual "significant shift").

numpy and pandas are imported by the functions that use them: the services import
this module when a server starts, long before a dataset is profiled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import IO, Any

from cumulo.core.datasets import DELIMITED, PARQUET
from cumulo.core.errors import ConfigError, InvalidInput

CHUNK_ROWS = 65_536
HISTOGRAM_BINS = 20
DRIFT_BINS = 10
MAX_DISTINCT = 10_000  # distinct values counted exactly up to this many per column
MAX_CATEGORIES = 1_000  # values of a non-numeric column compared for drift
PSI_THRESHOLD = 0.2
_EPS = 1e-4

Opener = Callable[[str], IO[bytes]]
Frames = Callable[[], Iterator[Any]]  # the rows as DataFrames, read from the start on each call


def pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise ConfigError(
            "Tabular datasets need pandas and pyarrow: pip install 'cumulo[data]'."
        ) from exc
    return pd


def chunks(fmt: dict[str, Any], paths: list[str], open_file: Opener) -> Iterator[Any]:
    """The rows of the files, in order, as pandas DataFrames of at most ``CHUNK_ROWS`` rows."""
    pd = pandas()
    for path in paths:
        with open_file(path) as fh:
            if fmt.get("type") == PARQUET:
                import pyarrow.parquet as pq

                try:
                    parquet = pq.ParquetFile(fh)
                    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
                        yield batch.to_pandas()
                except Exception as exc:  # pyarrow's errors have no common base
                    if isinstance(exc, InvalidInput | ConfigError):
                        raise
                    raise InvalidInput(f"{path!r} is not a readable parquet file: {exc}") from exc
            elif fmt.get("type") == DELIMITED:
                try:
                    reader = pd.read_csv(
                        fh,
                        sep=fmt.get("separator", ","),
                        header=0 if fmt.get("header", True) else None,
                        chunksize=CHUNK_ROWS,
                    )
                    for frame in reader:
                        if not fmt.get("header", True):
                            frame.columns = [f"Column{i + 1}" for i in range(frame.shape[1])]
                        yield frame
                except (ValueError, pd.errors.ParserError) as exc:
                    raise InvalidInput(f"{path!r} is not a readable delimited file: {exc}") from exc
            else:
                raise InvalidInput("Only a tabular dataset has rows.")


def frames(fmt: dict[str, Any], paths: list[str], open_file: Opener) -> Frames:
    """The files' rows, for ``profile``, ``head`` and ``compare`` (read again on each pass)."""
    return lambda: chunks(fmt, paths, open_file)


def _kind(dtype: Any) -> str:
    pd = pandas()
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def _numeric(kind: str) -> bool:
    return kind in ("integer", "float")


def _merge_kind(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} <= {"integer", "float"}:
        return "float"  # a chunk with a missing value reads a column of integers as floats
    return "string"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def profile(rows_of: Frames) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The schema (name and type of each column) and the profile of a tabular dataset."""
    rows = 0
    cols: dict[str, dict[str, Any]] = {}
    for frame in rows_of():
        rows += len(frame)
        for name in frame.columns:
            series = frame[name]
            key = str(name)
            kind = _kind(series.dtype)
            col = cols.get(key)
            if col is None:
                col = cols[key] = {
                    "type": kind,
                    "count": 0,
                    "missing": 0,
                    "sum": 0.0,
                    "min": None,
                    "max": None,
                    "values": set(),
                    "distinct_capped": False,
                }
            col["type"] = _merge_kind(col["type"], kind)
            present = series.dropna()
            col["count"] += len(present)
            col["missing"] += int(len(series) - len(present))
            if _numeric(kind) and len(present):
                values = present.to_numpy(dtype="float64")
                col["sum"] += float(values.sum())
                low, high = float(values.min()), float(values.max())
                col["min"] = low if col["min"] is None else min(col["min"], low)
                col["max"] = high if col["max"] is None else max(col["max"], high)
            if not col["distinct_capped"]:
                col["values"].update(present.astype(str).unique().tolist())
                if len(col["values"]) > MAX_DISTINCT:
                    col["distinct_capped"] = True
                    col["values"] = set()
    histograms = _histograms(rows_of, cols)
    schema = [{"name": name, "type": col["type"]} for name, col in cols.items()]
    columns = {}
    for name, col in cols.items():
        entry: dict[str, Any] = {
            "type": col["type"],
            "count": col["count"],
            "missing": col["missing"],
            "distinct": None if col["distinct_capped"] else len(col["values"]),
        }
        if _numeric(col["type"]):
            entry.update(
                min=_number(col["min"]),
                max=_number(col["max"]),
                mean=_number(col["sum"] / col["count"]) if col["count"] else None,
                histogram=histograms.get(name),
            )
        columns[name] = entry
    return schema, {"rows": rows, "columns": len(cols), "column_profiles": columns}


def _histograms(
    rows_of: Frames, cols: dict[str, dict[str, Any]]
) -> dict[str, dict[str, list[float]]]:
    import numpy as np

    edges = {
        name: np.linspace(
            col["min"],
            col["max"] if col["max"] > col["min"] else col["min"] + 1,
            HISTOGRAM_BINS + 1,
        )
        for name, col in cols.items()
        if _numeric(col["type"])
        and col["min"] is not None
        and math.isfinite(col["min"])
        and math.isfinite(col["max"])
    }
    if not edges:
        return {}
    counts = {name: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for name in edges}
    for frame in rows_of():
        for name in edges:
            if name in frame.columns:
                values = _floats(frame[name])
                counts[name] += np.histogram(values, bins=edges[name])[0]
    return {
        name: {"edges": [float(e) for e in edges[name]], "counts": [int(c) for c in counts[name]]}
        for name in edges
    }


def _floats(series: Any) -> Any:
    import numpy as np

    pd = pandas()
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def head(rows_of: Frames, n: int) -> dict[str, Any]:
    """The first ``n`` rows as ``{"columns": [...], "rows": [[...], ...]}`` (JSON values)."""
    pd = pandas()
    taken = []
    left = n
    for frame in rows_of():
        if left <= 0:
            break
        taken.append(frame.head(left))
        left -= len(taken[-1])
    if not taken:
        return {"columns": [], "rows": []}
    frame = pd.concat(taken, ignore_index=True)
    data = json.loads(frame.to_json(orient="split", date_format="iso", index=False))
    return {"columns": [str(c) for c in data["columns"]], "rows": data["data"]}


# ---------------------------------------------------------------------- drift
def compare(
    base: tuple[Frames, dict[str, Any]],
    other: tuple[Frames, dict[str, Any]],
    threshold: float = PSI_THRESHOLD,
) -> list[dict[str, Any]]:
    """Per column: schema change, PSI, Wasserstein distance and whether it drifted.

    Each side is ``(rows, profile)``; the profiles give the columns, their
    types and ranges, so each side is read once.
    """
    import numpy as np

    a_cols = base[1].get("column_profiles", {})
    b_cols = other[1].get("column_profiles", {})
    out: list[dict[str, Any]] = []
    numeric: dict[str, Any] = {}
    categorical: list[str] = []
    for name in [*a_cols, *[c for c in b_cols if c not in a_cols]]:
        a, b = a_cols.get(name), b_cols.get(name)
        row: dict[str, Any] = {
            "column": name,
            "base_type": a["type"] if a else None,
            "other_type": b["type"] if b else None,
            "psi": None,
            "wasserstein": None,
            "drift": False,
        }
        if a is None or b is None:
            row["change"] = "added" if a is None else "removed"
            row["drift"] = True
        elif _numeric(a["type"]) != _numeric(b["type"]) or (
            not _numeric(a["type"]) and a["type"] != b["type"]
        ):
            row["change"] = "type"
            row["drift"] = True
        else:
            row["change"] = None
            if _numeric(a["type"]):
                lows = [p["min"] for p in (a, b) if p.get("min") is not None]
                highs = [p["max"] for p in (a, b) if p.get("max") is not None]
                if lows and highs:
                    low, high = min(lows), max(highs)
                    numeric[name] = np.linspace(
                        low, high if high > low else low + 1, DRIFT_BINS + 1
                    )
            else:
                categorical.append(name)
        out.append(row)
    a_counts = _distributions(base[0], numeric, categorical)
    b_counts = _distributions(other[0], numeric, categorical)
    for row in out:
        name = row["column"]
        if row["change"] is not None or (name not in numeric and name not in categorical):
            continue
        if name in numeric:
            p, q = a_counts[name], b_counts[name]
        else:
            keys = sorted(set(a_counts[name]) | set(b_counts[name]))
            p = np.array([a_counts[name].get(k, 0) for k in keys], dtype=float)
            q = np.array([b_counts[name].get(k, 0) for k in keys], dtype=float)
        psi = population_stability(p, q)
        row["psi"] = psi
        if name in numeric:
            row["wasserstein"] = binned_wasserstein(p, q)
        row["drift"] = psi is not None and psi > threshold
    return out


def _distributions(
    rows_of: Frames, numeric: dict[str, Any], categorical: list[str]
) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {name: np.zeros(DRIFT_BINS, dtype=float) for name in numeric}
    out.update({name: {} for name in categorical})
    if not numeric and not categorical:
        return out
    for frame in rows_of():
        for name, edges in numeric.items():
            if name in frame.columns:
                out[name] += np.histogram(_floats(frame[name]), bins=edges)[0]
        for name in categorical:
            if name in frame.columns:
                counts: dict[str, int] = out[name]
                for value, count in frame[name].dropna().astype(str).value_counts().items():
                    if value in counts or len(counts) < MAX_CATEGORIES:
                        counts[value] = counts.get(value, 0) + int(count)
                    else:
                        counts["(other)"] = counts.get("(other)", 0) + int(count)
    return out


def population_stability(expected: Any, actual: Any) -> float | None:
    """PSI of two histograms over the same bins: sum((q - p) * ln(q / p)) of the shares."""
    import numpy as np

    p = np.asarray(expected, dtype=float)
    q = np.asarray(actual, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return None
    p = np.clip(p / p.sum(), _EPS, None)
    q = np.clip(q / q.sum(), _EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def binned_wasserstein(expected: Any, actual: Any) -> float | None:
    """The earth mover's distance of two histograms over equal bins, as a share of the range."""
    import numpy as np

    p = np.asarray(expected, dtype=float)
    q = np.asarray(actual, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return None
    cdf = np.cumsum(p / p.sum()) - np.cumsum(q / q.sum())
    return float(np.abs(cdf).sum() / len(p))


# ------------------------------------------------------------ sampled requests
def request_rows(bodies: list[str], columns: list[str]) -> Any:
    """The rows of an endpoint's sampled requests as one DataFrame.

    A body is ``{"data": [[...], ...]}`` or ``{"data": [{...}, ...]}``, MLflow's
    ``{"dataframe_split": {"columns", "data"}}`` or ``{"dataframe_records": [...]}``,
    or ``{"input_data": {"columns", "data"}}``. Rows given as lists without column
    names take the dataset's columns in order (the features first, as trained).
    Bodies that are not JSON, or hold none of these, are skipped.
    """
    pd = pandas()
    frames = []
    for body in bodies:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            continue
        frame = _request_frame(pd, parsed, columns)
        if frame is not None and len(frame):
            frames.append(frame)
    if not frames:
        raise InvalidInput(
            "No sampled request holds rows to compare (turn on request_logging in the "
            "deployment's config, and send rows as {'data': [[...]]} or a dataframe)."
        )
    return pd.concat(frames, ignore_index=True)


def _request_frame(pd: Any, body: Any, columns: list[str]) -> Any:
    if not isinstance(body, dict):
        return None
    split = body.get("dataframe_split") or body.get("input_data")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        names = split.get("columns") or columns
        return _rows(pd, split["data"], names)
    records = body.get("dataframe_records")
    if isinstance(records, list):
        return pd.DataFrame.from_records([r for r in records if isinstance(r, dict)])
    data = body.get("data")
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data)
        return _rows(pd, data, columns)
    return None


def _rows(pd: Any, rows: list[Any], names: list[str]) -> Any:
    rows = [r for r in rows if isinstance(r, list)]
    width = max((len(r) for r in rows), default=0)
    if not rows or width > len(names):
        return None
    return pd.DataFrame([r + [None] * (width - len(r)) for r in rows], columns=names[:width])
