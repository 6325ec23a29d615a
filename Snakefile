# videoconcepts: find the spatiotemporal concepts a video transformer uses.
# Thin on purpose: configuration and path helpers live in workflow/rules/common.smk,
# one rule file per stage, all logic in the videoconcepts package.


import time

from videoconcepts import jobserver

# Before any job: the report path is printed only when this run built the report.
RUN_STARTED = time.time()


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/decode.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tubelets.smk"
include: "workflow/rules/concepts.smk"
include: "workflow/rules/units.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/cris.smk"
include: "workflow/rules/occlusion.smk"
include: "workflow/rules/curves.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/rosetta.smk"
include: "workflow/rules/straightening.smk"
include: "workflow/rules/static_dynamic.smk"
include: "workflow/rules/connectome.smk"
include: "workflow/rules/sae.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        [
            [
                skipped_table(m),
                feature_stores(m),
                concept_dirs(m),
                validation_tables(m) if DEMO else [],
                importance_outputs(m),
                list(straightening_outputs(m).values()),
                list(detector_outputs(m).values()),
                list(static_dynamic_outputs(m).values()),
                list(connectome_outputs(m).values()),
                list(sae_outputs(m).values()),
            ]
            for m in MODELS.values()
        ],
        list(rosetta_tables().values()) if ROSETTA else [],
        detect_tables(),
        report_dir(),


onstart:
    cancel_rescheduling_timers_at_exit()
    if use_jobserver():
        jobserver.start(Path(RESULTS) / "logs" / "jobserver.log")


onsuccess:
    jobserver.stop()
    # Not after `--until decode` (no report) nor when the report is one an earlier run left:
    # it may be outdated (the report of these settings before a code edit, say).
    index = Path(report_dir()) / "index.html"
    if index.is_file() and index.stat().st_mtime >= RUN_STARTED:
        print(f"videoconcepts report: {index}")


onerror:
    jobserver.stop()
