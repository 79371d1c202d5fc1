"""The small XDR reader (``genes/_rdx.py``) against the ``rdata`` package and against R itself."""

from __future__ import annotations

import bz2
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from sasp_atlas.genes._rdx import UnsupportedRData, data_frame_columns, read_rda_objects
from sasp_atlas.genes.symbols import hgnc_table

HGNC_RDA = SHARED / "reference" / "raw" / "HGNChelper_hgnc.table.rda"


def test_hgnc_table_equals_rdata_on_the_real_file():
    """Every value and every NA of the three columns, as the general reader gives them."""
    if not HGNC_RDA.is_file():
        pytest.skip(f"{HGNC_RDA} not found")
    rdata = pytest.importorskip("rdata")
    ours = data_frame_columns(read_rda_objects(HGNC_RDA)["hgnc.table"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing constructor")
        ref = rdata.read_rda(HGNC_RDA)["hgnc.table"]
    assert list(ours) == list(ref.columns) == ["Symbol", "Approved.Symbol", "chromosome"]
    for col in ref.columns:
        expected = [None if pd.isna(v) else str(v) for v in ref[col]]
        assert ours[col] == expected, col
    assert sum(v is None for v in ours["chromosome"]) == 6  # the file's missing chromosomes stay missing


def test_hgnc_table_frame(atlas_env):
    df = hgnc_table()
    assert list(df.columns) == ["symbol", "approved", "chromosome"]
    assert len(df) > 100_000 and df.notna().all().all()
    assert set(df.loc[df.symbol == "IL8", "approved"]) == {"CXCL8"}


def _rscript(tmp_path, code: str):
    exe = shutil.which("Rscript")
    if exe is None:
        pytest.skip("Rscript not installed (apt-get install r-base-core)")
    path = tmp_path / "x.rda"
    subprocess.run([exe, "-e", code.replace("OUT", str(path))], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("version", [2, 3])
def test_values_written_by_r(tmp_path, version):
    """Constructed case with known answers: each vector type, NA, attributes, a list, row names."""
    path = _rscript(
        tmp_path,
        "df <- data.frame(s = c('a', NA, 'b\u00e9'), i = c(1L, NA, 3L), d = c(0.5, NA, -2), "
        "l = c(TRUE, NA, FALSE), f = factor(c('x', 'y', 'x')), stringsAsFactors = FALSE); "
        "v <- list(seq_len(4), c(x = 1.5)); "
        f"save(df, v, file = 'OUT', version = {version})",
    )
    objs = read_rda_objects(path)
    assert set(objs) == {"df", "v"}
    cols = data_frame_columns(objs["df"])
    assert cols["s"] == ["a", None, "b\u00e9"]
    assert cols["i"][0] == 1 and cols["i"][1] == -(2**31) and cols["i"][2] == 3  # R's NA_integer_
    assert cols["d"][0] == 0.5 and np.isnan(cols["d"][1]) and cols["d"][2] == -2
    assert list(cols["l"][[0, 2]]) == [1, 0]
    factor = objs["df"].value[4]
    assert list(factor.value) == [1, 2, 1] and factor.attributes["levels"].value == ["x", "y"]
    assert list(objs["v"].value[0].value) == [1, 2, 3, 4]  # a compact integer sequence (ALTREP) in version 3
    assert objs["v"].value[1].attributes["names"].value == ["x"]


def test_unsupported_objects_are_refused_by_name(tmp_path):
    path = _rscript(tmp_path, "f <- function(x) x + 1; save(f, file = 'OUT')")
    with pytest.raises(UnsupportedRData, match="SEXP type 3"):
        read_rda_objects(path)


def test_not_an_xdr_file(tmp_path):
    path = tmp_path / "x.rda"
    path.write_bytes(bz2.compress(b"RDA3\nA\n" + b"\0" * 20))  # an ASCII save()
    with pytest.raises(UnsupportedRData, match="not an XDR save"):
        read_rda_objects(path)
