"""Target identifier rules: 63-byte limit, deterministic renames, uniqueness."""

from __future__ import annotations

import pytest

from nova_pipeline.core.identifiers import PG_MAX_IDENTIFIER_BYTES, fit_identifier, target_columns, unique_identifiers
from nova_pipeline.core.spec import TableSpec


@pytest.mark.parametrize("name", ["id", "user name", 'say "hi"', "select", "ünïcødé", "x" * 63, "é" * 31])
def test_names_that_fit_are_kept(name):
    assert fit_identifier(name) == name


@pytest.mark.parametrize("name", ["x" * 64, "x" * 70, "é" * 32, "日本" * 20, "a" * 61 + "€"])
def test_long_names_are_cut_to_63_bytes_deterministically(name):
    fitted = fit_identifier(name)
    assert len(fitted.encode("utf-8")) <= PG_MAX_IDENTIFIER_BYTES
    assert fitted == fit_identifier(name)  # same source, same target
    assert fitted.encode("utf-8").decode("utf-8") == fitted  # cut on a character boundary
    assert name.startswith(fitted[:-9]) and fitted[-9] == "_"


def test_two_long_names_with_the_same_prefix_stay_distinct():
    a, b = "p" * 70 + "_a", "p" * 70 + "_b"
    assert fit_identifier(a) != fit_identifier(b)


@pytest.mark.parametrize("names", [
    ["a", "b", "c"],
    ["x" * 70, "x" * 71],
    ["dup", "dup"],
    [fit_identifier("z" * 80), "z" * 80],  # a short name equal to a long one's shortened form
])
def test_unique_identifiers_are_unique_and_fit(names):
    out = unique_identifiers(names)
    assert len(out) == len(names) == len(set(out))
    assert all(len(n.encode("utf-8")) <= PG_MAX_IDENTIFIER_BYTES for n in out)


def test_unique_identifiers_keep_the_first_of_a_collision():
    out = unique_identifiers(["dup", "dup"])
    assert out[0] == "dup" and out[1].startswith("dup_") and len(out[1]) == 12


def test_target_columns_honour_explicit_names_and_resolve_collisions():
    table = TableSpec(columns={
        "id": {"type": "bigint"},
        "Full Name": {"type": "text", "name": "full_name"},
        "y" * 70: {"type": "text"},
        "other": {"type": "text", "name": "id"},  # explicit rename onto another column's name
    })
    pairs = dict(target_columns(table))
    assert pairs["id"] == "id" and pairs["Full Name"] == "full_name"
    assert pairs["y" * 70] == fit_identifier("y" * 70)
    assert pairs["other"] != "id" and pairs["other"].startswith("id_")
