"""Reads every table of a roadhex data dir with pyarrow and DuckDB, independently of roadhex.

Checks the GeoParquet 1.1 metadata and the WKB of the geometry column, and prints one JSON object:
{table: {"pyarrow_rows": n, "duckdb_rows": n, "geometry": "Point" | null}}. Exits non-zero on any
mismatch so the failing check is in stderr.
"""
import glob
import json
import struct
import sys

import duckdb
import pyarrow.parquet as pq

WKB_TYPES = {1: "Point", 2: "LineString", 3: "Polygon"}


def check_geo(path, table):
    meta = table.schema.metadata or {}
    if b"geo" not in meta:
        return None
    geo = json.loads(meta[b"geo"])
    assert geo["version"].startswith("1."), (path, geo["version"])
    col = geo["primary_column"]
    spec = geo["columns"][col]
    assert spec["encoding"] == "WKB", (path, spec)
    kinds = set()
    for wkb in table.column(col).to_pylist():
        order = "<" if wkb[0] == 1 else ">"
        (kind,) = struct.unpack(order + "I", wkb[1:5])
        kinds.add(WKB_TYPES[kind])
        if kind == 1:
            x, y = struct.unpack(order + "dd", wkb[5:21])
            assert -180 <= x <= 180 and -90 <= y <= 90, (path, x, y)
    assert kinds <= set(spec["geometry_types"]), (path, kinds, spec["geometry_types"])
    return sorted(kinds)[0] if kinds else spec["geometry_types"][0]


def main(data):
    out = {}
    con = duckdb.connect()
    for table_dir in sorted(glob.glob(f"{data}/tables/*")):
        name = table_dir.rsplit("/", 1)[1]
        files = sorted(glob.glob(f"{table_dir}/date=*/*.parquet"))
        if not files:
            continue
        rows, geometry = 0, None
        for f in files:
            t = pq.read_table(f)
            rows += t.num_rows
            geometry = check_geo(f, t) or geometry
        duck = con.execute(
            f"SELECT count(*), count(DISTINCT date) FROM read_parquet('{table_dir}/date=*/*.parquet', hive_partitioning = true)"
        ).fetchone()
        if geometry:
            blob = con.execute(
                f"SELECT min(octet_length(geometry)) FROM read_parquet('{table_dir}/date=*/*.parquet')"
            ).fetchone()[0]
            assert blob and blob >= 21, (name, blob)
        out[name] = {"pyarrow_rows": rows, "duckdb_rows": duck[0], "dates": duck[1], "geometry": geometry}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
