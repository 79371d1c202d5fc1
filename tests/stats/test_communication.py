"""SASP communication with LIANA, checked against the library: the per-sample table equals calling
``li.mt.rank_aggregate`` directly with the same resource and parameters, the SASP resource holds
exactly the consensus pairs with a SASP ligand, the Wu table's ranks and sample counts are coherent,
a constructed sender -> receiver pair comes out on top, and the SASP-high / SASP-low sender split
takes tertiles within sample and type (a constructed known answer, and on Wu the added arm groups
leave LIANA's magnitude scores unchanged)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import liana as li
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from sasp_atlas.data import InputError
from sasp_atlas.genes import get_signature
from sasp_atlas.stats.communication import (
    COMMUNICATION_COLUMNS,
    DEFAULT_LIGAND_SETS,
    EXPR_PROP,
    MIN_CELLS,
    N_PERMS,
    SEED,
    SPLIT_COLUMNS,
    _split_scores,
    communication_by_sample,
    consensus_resource,
    resource_pair_counts,
    resource_provenance,
    sasp_communication,
    sasp_resource,
    sasp_sender_split,
    sasp_tertiles,
)

KEY = ["source", "target", "ligand_complex", "receptor_complex"]


def _sasp_genes(sets=DEFAULT_LIGAND_SETS) -> set[str]:
    return set().union(*(set(get_signature(s)) for s in sets))


def _independent_resource(genes: set[str]) -> pd.DataFrame:
    """The consensus pairs whose ligand has a SASP subunit, filtered here without the module."""
    res = li.rs.select_resource("consensus")
    keep = res["ligand"].str.split("_").map(lambda units: any(u in genes for u in units)).to_numpy(dtype=bool)
    return res[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def wu_run(wu):
    obs_before, obsm_before, uns_before = wu.obs.copy(), set(wu.obsm), set(wu.uns)
    table = sasp_communication(wu, dataset_id="wu2021_breast_tnbc_cid4465")
    split = sasp_sender_split(wu, dataset_id="wu2021_breast_tnbc_cid4465")
    untouched = wu.obs.equals(obs_before) and set(wu.obsm) == obsm_before and set(wu.uns) == uns_before
    return table, split, untouched


@pytest.fixture(scope="module")
def mgh_per_sample(mgh):
    return communication_by_sample(mgh)


def _toy(seed: int = 0) -> AnnData:
    """Two tumours (s1, s2) of types A, B, C (30 cells each) and a third tumour (s3) of type A only.

    Every gene is Poisson(0.5) noise, except: CXCL8 (a SenMayo-secreted ligand) at Poisson(30) in
    A, its receptors CXCR1/CXCR2 at Poisson(30) in B; in each tumour the first 10 A cells also carry
    every SenMayo gene at Poisson(6) and CXCL8 at Poisson(60) (A's SASP-high third). Values are
    natural log1p of the counts (as if every cell had the same library size).
    """
    rng = np.random.default_rng(seed)
    senmayo = list(get_signature("senmayo"))
    res = sasp_resource()
    partners = {u for col in ("ligand", "receptor") for x in res[col].head(60) for u in x.split("_")}
    genes = sorted(set(senmayo) | partners | {"CXCL8", "CXCR1", "CXCR2"}) + [f"BG{i}" for i in range(60)]
    col = {g: i for i, g in enumerate(genes)}
    blocks, obs = [], []
    for sample, types in (("s1", "ABC"), ("s2", "ABC"), ("s3", "A")):
        for t in types:
            x = rng.poisson(0.5, size=(30, len(genes))).astype(np.float64)
            if t == "A":
                x[:, col["CXCL8"]] = rng.poisson(30, 30)
                x[:10, [col[g] for g in senmayo]] = rng.poisson(6, (10, len(senmayo)))
                x[:10, col["CXCL8"]] = rng.poisson(60, 10)
            if t == "B":
                x[:, [col["CXCR1"], col["CXCR2"]]] = rng.poisson(30, (30, 2))
            blocks.append(x)
            obs += [(sample, t)] * 30
    logx = np.log1p(np.vstack(blocks))
    obs = pd.DataFrame(obs, columns=["sample", "cell_type"], index=[f"c{i}" for i in range(len(obs))])
    return AnnData(X=sp.csr_matrix(logx, dtype=np.float32), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def toy():
    return _toy()


# --------------------------------------------------------------------------- (a) equals LIANA called directly
@pytest.mark.slow
def test_per_sample_table_equals_liana_called_directly(mgh, mgh_per_sample):
    per = mgh_per_sample
    assert per.attrs["params"]["base"] == 2.0  # log2(TPM/10+1) release: LIANA's log2FC de-logs with base 2
    resource = _independent_resource(_sasp_genes())
    samples = sorted(mgh.obs["sample"].astype(str).unique())
    assert sorted(per["sample"].unique()) == samples and len(samples) == 2
    for sample in samples:
        sub = mgh[mgh.obs["sample"].astype(str) == sample].copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = li.mt.rank_aggregate(
                sub,
                groupby="cell_type",
                resource=resource,
                use_raw=False,
                expr_prop=0.1,
                min_cells=5,
                n_perms=100,
                seed=1337,
                base=2.0,
                inplace=False,
                verbose=False,
            )
        ours = per[per["sample"] == sample].drop(columns="sample")
        assert len(ours) == len(direct) > 0
        ours = ours.sort_values(KEY).reset_index(drop=True)
        direct = direct.sort_values(KEY).reset_index(drop=True)[ours.columns]
        pd.testing.assert_frame_equal(ours[KEY].astype(str), direct[KEY].astype(str))
        for column in ("magnitude_rank", "specificity_rank", "lr_means", "cellphone_pvals"):
            np.testing.assert_array_equal(ours[column].to_numpy(), direct[column].to_numpy())


@pytest.mark.slow
def test_parameters_are_recorded(mgh_per_sample):
    params = mgh_per_sample.attrs["params"]
    assert (params["expr_prop"], params["min_cells"], params["n_perms"], params["seed"]) == (
        EXPR_PROP,
        MIN_CELLS,
        N_PERMS,
        SEED,
    )
    assert params["use_raw"] is False and params["resource_sha256"] == resource_provenance()["sha256"]
    assert params["liana_version"] == li.__version__


# --------------------------------------------------------------------------- (b) the SASP resource
def test_resource_holds_exactly_the_sasp_ligand_pairs():
    genes = _sasp_genes()
    ours = sasp_resource()
    assert list(ours.columns) == ["ligand", "receptor"]
    assert all(any(u in genes for u in lig.split("_")) for lig in ours["ligand"])  # only SASP ligands
    expected = _independent_resource(genes)
    assert set(map(tuple, ours.to_numpy())) == set(map(tuple, expected[["ligand", "receptor"]].to_numpy()))
    # every SASP gene that is a ligand (or a complex subunit of one) in the consensus resource is present
    consensus_units = {u for lig in consensus_resource()["ligand"] for u in lig.split("_")}
    ours_units = {u for lig in ours["ligand"] for u in lig.split("_")}
    assert (genes & consensus_units) <= ours_units
    strict = sasp_resource(complex_policy="all")
    assert all(all(u in genes for u in lig.split("_")) for lig in strict["ligand"]) and len(strict) <= len(ours)
    with pytest.raises(InputError, match="complex_policy"):
        sasp_resource(complex_policy="some")


def test_pair_counts_per_set_match_the_restricted_resources():
    counts = resource_pair_counts().set_index("ligand_set")
    assert list(counts.index) == [*DEFAULT_LIGAND_SETS, "union"]
    for sid in DEFAULT_LIGAND_SETS:
        sub = sasp_resource(sid)
        assert counts.loc[sid, "n_pairs"] == len(sub) > 0
        assert counts.loc[sid, "n_ligands"] == sub["ligand"].nunique()
        assert counts.loc[sid, "n_genes"] == len(set(get_signature(sid)))
    assert counts.loc["union", "n_pairs"] == len(sasp_resource())
    assert (
        max(counts.loc[list(DEFAULT_LIGAND_SETS), "n_pairs"])
        <= counts.loc["union", "n_pairs"]
        <= counts.loc[list(DEFAULT_LIGAND_SETS), "n_pairs"].sum()
    )


def test_resource_provenance_is_the_file_liana_reads():
    prov = resource_provenance()
    path = Path(li.__file__).parent / "resource" / "omni_resource.csv"
    assert Path(prov["path"]).resolve() == path.resolve()
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["n_pairs"] == len(li.rs.select_resource("consensus"))
    pd.testing.assert_frame_equal(consensus_resource(), li.rs.select_resource("consensus").reset_index(drop=True))


# --------------------------------------------------------------------------- (c) Wu
@pytest.mark.slow
def test_wu_table_is_coherent(wu, wu_run):
    table, _, untouched = wu_run
    assert untouched  # nothing written on adata
    assert list(table.columns) == COMMUNICATION_COLUMNS and len(table) > 0
    assert (table["dataset"] == "wu2021_breast_tnbc_cid4465").all()
    for column in ("magnitude_rank", "specificity_rank", "magnitude_rank_best", "specificity_rank_best"):
        assert table[column].between(0, 1).all()
    assert (table["magnitude_rank_best"] <= table["magnitude_rank"]).all()
    assert (
        (table["n_samples_found"] <= table["n_samples_expressed"])
        & (table["n_samples_expressed"] <= table["n_samples_tested"])
    ).all()
    n_samples = wu.obs["sample"].nunique()
    assert table["n_samples_tested"].max() <= n_samples
    found = table["n_samples_found"] > 0
    assert found.any() and (table.loc[found, "specificity_rank_best"] <= table.attrs["params"]["found_rank"]).all()
    labels = (
        {"not found", "single tumour", "samples not recorded"}
        | {f"{k} tumours" for k in (2,)}
        | {f"replicated ({k} tumours)" for k in range(3, n_samples + 1)}
    )
    assert set(table["evidence"]) <= labels and (table.loc[~found, "evidence"] == "not found").all()
    # only SASP ligands, each labelled with the set(s) it comes from
    assert table["ligand_sets"].str.len().gt(0).all()
    genes = _sasp_genes()
    assert all(any(u in genes for u in lig.split("_")) for lig in table["ligand"])
    # every sender and receiver is a type with >= min_cells cells in the tumour
    counts = wu.obs["cell_type"].astype(str).value_counts()
    assert (counts[pd.unique(table[["source", "target"]].to_numpy().ravel())] >= MIN_CELLS).all()


# --------------------------------------------------------------------------- (d) a constructed known answer
def test_constructed_sender_receiver_pair_is_on_top(toy):
    table = sasp_communication(toy, dataset_id="toy")
    top = table.iloc[0]
    assert (top["source"], top["target"], top["ligand"]) == ("A", "B", "CXCL8")
    assert top["receptor"] in {"CXCR1", "CXCR2"}
    assert top["magnitude_rank"] == table["magnitude_rank"].min()
    assert top["n_samples_found"] == top["n_samples_tested"] == 2 and top["evidence"] == "2 tumours"
    assert table.attrs["samples_skipped"] == ["s3"]  # one cell type only: nothing to communicate with
    assert table.attrs["params"]["base"] == pytest.approx(np.e)  # no provenance: natural log assumed


# --------------------------------------------------------------------------- (e) SASP-high vs SASP-low senders
def test_tertiles_are_taken_within_sample_and_type():
    rng = np.random.default_rng(3)
    scores = np.concatenate(
        [
            rng.permutation(np.arange(9.0)) + 1,
            rng.permutation(np.arange(10.0)) + 1,
            rng.permutation(np.arange(4.0)) + 100,
            np.full(6, 2.0),
        ]
    )
    groups = np.array(["A"] * 9 + ["B"] * 10 + ["A"] * 4 + ["C"] * 6)
    samples = np.array(["s1"] * 19 + ["s2"] * 4 + ["s1"] * 6)
    labels = sasp_tertiles(scores, groups, samples)
    a1, b1, a2, c1 = labels[:9], labels[9:19], labels[19:23], labels[23:]
    assert set(np.flatnonzero(a1 == "SASP-low")) == set(np.flatnonzero(scores[:9] <= 3))
    assert set(np.flatnonzero(a1 == "SASP-high")) == set(np.flatnonzero(scores[:9] >= 7))
    assert (b1 == "SASP-low").sum() == (b1 == "SASP-high").sum() == 3  # floor(10/3) in each arm
    assert set(scores[9:19][b1 == "SASP-high"]) == {8, 9, 10}
    # s2's type A is split on its own scores (all above s1's), one cell per arm
    assert (a2 == "SASP-high").sum() == (a2 == "SASP-low").sum() == 1 and scores[19:23][a2 == "SASP-high"] == 103
    assert (c1 == "SASP-mid").all()  # ties: no cell is above or below another


def test_split_uses_the_top_and_bottom_tertile_of_each_type(toy):
    split = sasp_sender_split(toy, dataset_id="toy", score_method="mean")
    assert list(split.columns) == SPLIT_COLUMNS
    assert split.attrs["senders"] == {"s1": ["A", "B", "C"], "s2": ["A", "B", "C"], "s3": ["A"]}
    row = split[
        (split["sender_type"] == "A")
        & (split["target"] == "B")
        & (split["ligand"] == "CXCL8")
        & (split["receptor"] == "CXCR2")
    ].iloc[0]
    assert row["n_samples_high_gt_low"] == row["n_samples_tested"] == 2 and row["evidence"] == "2 tumours"
    # known answer: in each tumour the SASP-high arm is A's first 10 cells (SenMayo raised), the low arm
    # the bottom third of the rest by score; lr_means = (mean CXCL8 in the arm + mean CXCR2 in B) / 2
    X = toy.X.toarray()
    senmayo_mean = _split_scores(toy, "senmayo", "mean")
    cxcl8, cxcr2 = toy.var_names.get_loc("CXCL8"), toy.var_names.get_loc("CXCR2")
    high, low = [], []
    for sample in ("s1", "s2"):
        a = np.flatnonzero((toy.obs["sample"] == sample).to_numpy() & (toy.obs["cell_type"] == "A").to_numpy())
        b = (toy.obs["sample"] == sample).to_numpy() & (toy.obs["cell_type"] == "B").to_numpy()
        order = a[np.argsort(senmayo_mean[a])]
        assert set(order[-10:]) == set(a[:10])  # the raised cells are the top tertile
        receptor = X[b, cxcr2].astype(np.float32).mean(dtype=np.float32)
        high.append((X[order[-10:], cxcl8].mean(dtype=np.float32) + receptor) / 2)
        low.append((X[order[:10], cxcl8].mean(dtype=np.float32) + receptor) / 2)
    assert row["lr_means_high"] == pytest.approx(np.median(high), rel=1e-5)
    assert row["lr_means_low"] == pytest.approx(np.median(low), rel=1e-5)
    assert row["delta_lr_means"] > 0


@pytest.mark.slow
def test_added_arm_groups_leave_liana_magnitude_scores_unchanged(wu, wu_run):
    """The split adds each type's arms as extra groups (copies of the cells); a run in which only one
    type is relabelled into its tertiles, with no copies, gives the same lr_means for every pair."""
    _, split, _ = wu_run
    sender = "Fibroblast (CAF)"
    groups = wu.obs["cell_type"].astype(str).to_numpy()
    tertile = sasp_tertiles(_split_scores(wu, "senmayo", "expected"), groups, wu.obs["sample"].astype(str).to_numpy())
    labels = np.where(groups == sender, np.char.add(f"{sender} ", tertile.astype(str)), groups)
    light = AnnData(
        X=wu.X,
        obs=pd.DataFrame({"label": pd.Categorical(labels)}, index=wu.obs_names),
        var=pd.DataFrame(index=wu.var_names),
    )
    counts = pd.Series(groups).value_counts()
    receivers = sorted(t for t, n in counts.items() if n >= MIN_CELLS and t != sender)
    pairs = pd.DataFrame(
        [(f"{sender} {arm}", r) for arm in ("SASP-high", "SASP-low") for r in receivers], columns=["source", "target"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = li.mt.rank_aggregate(
            light,
            groupby="label",
            resource=sasp_resource(),
            groupby_pairs=pairs,
            use_raw=False,
            expr_prop=EXPR_PROP,
            min_cells=MIN_CELLS,
            n_perms=None,
            inplace=False,
            verbose=False,
        )
    clean["arm"] = np.where(clean["source"].str.endswith("SASP-high"), "lr_means_high", "lr_means_low")
    clean = clean.pivot_table(
        index=["target", "ligand_complex", "receptor_complex"], columns="arm", values="lr_means", aggfunc="first"
    ).reset_index()
    ours = split[(split["sender_type"] == sender) & (split["target"] != sender)]
    merged = ours.merge(
        clean.rename(columns={"ligand_complex": "ligand", "receptor_complex": "receptor"}),
        on=["target", "ligand", "receptor"],
        how="outer",
        suffixes=("", "_clean"),
        indicator=True,
    )
    assert (merged["_merge"] == "both").all() and len(merged) > 0  # the same pairs pass expr_prop
    for arm in ("lr_means_high", "lr_means_low"):
        np.testing.assert_array_equal(merged[arm].to_numpy(), merged[f"{arm}_clean"].to_numpy())


@pytest.mark.slow
def test_wu_split_is_coherent(wu_run):
    _, split, _ = wu_run
    assert list(split.columns) == SPLIT_COLUMNS and len(split) > 0
    assert split[["magnitude_rank_high", "magnitude_rank_low"]].stack().between(0, 1).all()
    assert (split["n_samples_high_gt_low"] <= split["n_samples_tested"]).all()
    both = split["lr_means_high"].notna() & split["lr_means_low"].notna()
    np.testing.assert_allclose(
        split.loc[both, "delta_lr_means"], split.loc[both, "lr_means_high"] - split.loc[both, "lr_means_low"], rtol=1e-6
    )
    assert set(split["evidence"]) <= {"high not above low", "single tumour"}
