"""Report section of the validation stage (demo): concepts against ground truth."""

from __future__ import annotations

from videoconcepts.report.page import Context, table

METHODS = ("slic", "random_crops")
PROTOCOLS = {"mean_iou": "in-sample", "crossfit_iou": "cross-fitted"}


def section(context: Context) -> str:
    """SLIC tubelets beside the random-crop baseline, in-sample and cross-fitted; empty
    outside the demo."""
    if "validation" not in context.inputs:
        return ""
    best = context.inputs.table("validation")
    side = best.pivot(index="role", columns="method", values=list(PROTOCOLS))
    columns = [(p, m) for m in METHODS for p in PROTOCOLS if (p, m) in side.columns]
    side = side[columns]
    side.columns = [f"{m} {PROTOCOLS[p]}" for p, m in columns]
    return (
        "<h2>Concepts vs. ground truth (demo)</h2>"
        "<p class='note'>Best concept per object role by mean IoU with the role's "
        "visible masks, SLIC tubelets (VTCD) beside random crops of as many tubelets per "
        "video and head. In-sample (the paper's protocol): the concept is chosen and "
        "scored on the same videos, which flatters it. Cross-fitted: chosen on one half of "
        "the videos, scored on the other, averaged over random halvings.</p>"
        + table(side.reset_index())
        + "<details><summary>best concepts</summary>"
        + table(best)
        + "</details>"
    )
