"""The staging area: atomic Parquet files, listing, odd table names, bounded batch reads."""

import pyarrow as pa
import pytest

from nova_pipeline.core.staging import Staging


SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])


def table(n: int) -> pa.Table:
    return pa.table({"id": list(range(n)), "v": [str(i) for i in range(n)]}, schema=SCHEMA)


def test_written_files_are_listed_counted_and_read_by_row_group(tmp_path):
    stg = Staging(str(tmp_path))
    with stg.writer("raw", "t", SCHEMA) as w:
        for i in range(3):
            w.write_table(table(10))
    with stg.writer("raw", "t", SCHEMA, name="part-00001.parquet") as w:
        w.write_table(table(5))
    assert [p.rsplit("/", 1)[1] for p in stg.files("raw", "t")] == ["part-00000.parquet", "part-00001.parquet"]
    assert stg.row_count("raw", "t") == 35
    assert [b.num_rows for b in stg.read_batches("raw", "t")] == [10, 10, 10, 5]
    assert stg.schema("raw", "t").names == ["id", "v"]
    stg.clear("raw", "t")
    assert stg.files("raw", "t") == [] and stg.row_count("raw", "t") == 0 and stg.schema("raw", "t") is None


def test_a_failed_write_leaves_nothing_that_looks_complete(tmp_path):
    stg = Staging(str(tmp_path))
    with pytest.raises(RuntimeError):
        with stg.writer("clean", "t", SCHEMA) as w:
            w.write_table(table(10))
            raise RuntimeError("disk full")
    assert stg.files("clean", "t") == []
    assert list((tmp_path / "clean" / "t").iterdir()) == []


def test_table_names_with_slashes_do_not_nest(tmp_path):
    stg = Staging(str(tmp_path))
    for name in ("a", "a/b"):
        with stg.writer("raw", name, SCHEMA) as w:
            w.write_table(table(2 if name == "a" else 3))
    assert stg.row_count("raw", "a") == 2 and stg.row_count("raw", "a/b") == 3


def test_partitions_live_under_the_table(tmp_path):
    stg = Staging(str(tmp_path))
    for key, n in (("2024-01-01", 2), ("2024-01-02", 4)):
        with stg.writer("clean", "t", SCHEMA, partition=key) as w:
            w.write_table(table(n))
    assert stg.row_count("clean", "t", "2024-01-02") == 4
    assert stg.row_count("clean", "t") == 6


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown staging kind"):
        Staging(str(tmp_path)).dir("cooked", "t")


def test_arrow_allocates_from_jemalloc_unless_the_user_chose_another_pool():
    import os
    import subprocess
    import sys

    def pool(env: dict[str, str]) -> str:
        code = "import nova_pipeline.core.staging, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
        env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True).stdout.strip()

    assert pool({"ARROW_DEFAULT_MEMORY_POOL": None}) == "jemalloc"
    assert pool({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"
