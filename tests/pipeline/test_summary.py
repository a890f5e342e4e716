"""The headline mask set of metrics/summary.json: the widest of the tables' mask sets, by the kind its name says."""

from lama.pipeline.summary import headline_mask_set


def test_the_widest_mask_set_by_kind_is_the_headline() -> None:
    assert headline_mask_set(["thin_128", "thick_128", "medium_128"]) == "thick_128"
    assert headline_mask_set(["random_thick_512", "thin_512"]) == "random_thick_512"  # the official folder names
    assert headline_mask_set(["medium_256", "mine", "thin_256"]) == "medium_256"  # a name without a kind ranks last
    assert headline_mask_set(["thick_256", "thick_512"]) == "thick_512"  # a tie: the last listed
