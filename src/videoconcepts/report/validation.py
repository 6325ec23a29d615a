"""Report section of the validation stage (demo): concepts against ground truth."""

from __future__ import annotations

from videoconcepts.report.page import Context, table


def section(context: Context) -> str:
    """SLIC tubelets beside the random-crop baseline; empty outside the demo."""
    if "validation" not in context.inputs:
        return ""
    best = context.inputs.table("validation")
    side = best.pivot(index="role", columns="method", values="mean_iou")
    side = side[[m for m in ("slic", "random_crops") if m in side.columns]]
    return (
        "<h2>Concepts vs. ground truth (demo)</h2>"
        "<p class='note'>Best concept per object role by mean IoU with the role's "
        "visible masks, SLIC tubelets (VTCD) beside the random-crop baseline.</p>"
        + table(side.reset_index())
        + "<details><summary>best concepts</summary>"
        + table(best)
        + "</details>"
    )
