"""Many files: a LocalCluster run with a broken file, and resuming."""

import pytest

from nemesis_bkg.parallel import output_path_for, remove_files
from nemesis_bkg.simulate import simulate_map, write_simulated_map

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    paths = []
    for seed, band in enumerate(("pacs70", "spire350")):
        path = folder / f"{band}.fits"
        write_simulated_map(simulate_map((96, 96), instrument=band, n_sources=4, seed=seed), path)
        paths.append(path)
    broken = folder / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    return [paths[0], broken, paths[1]]


def test_local_cluster_reports_the_broken_file_and_finishes_the_rest(inputs, tmp_path):
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        table = remove_files(inputs, tmp_path, client=client, device="cpu", progress=False)
        # A second run on the same cluster gets its own results, not the first run's.
        again = remove_files(inputs[2:], tmp_path / "again", client=client, device="cpu",
                             progress=False)
    assert list(again["status"]) == ["done"] and again["input"][0] == str(inputs[2])
    assert list(table["status"]) == ["done", "failed", "done"]
    assert "broken.fits" in table["input"][1] and table["message"][1]
    assert output_path_for(inputs[0], tmp_path).exists()
    assert not output_path_for(inputs[1], tmp_path).exists()
    assert not list(tmp_path.glob("*.part"))


def test_rerun_skips_done_files_and_retries_failures(inputs, tmp_path):
    first = remove_files(inputs[:1], tmp_path, device="cpu", progress=False)
    assert list(first["status"]) == ["done"]
    again = remove_files(inputs, tmp_path, device="cpu", progress=False)
    assert list(again["status"]) == ["skipped", "failed", "done"]


def test_colliding_output_names_are_refused(inputs, tmp_path):
    with pytest.raises(ValueError, match="same file name"):
        remove_files([inputs[0], inputs[0]], tmp_path, progress=False)
