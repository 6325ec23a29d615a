rule curves:
    """Remove units cumulatively by CRIS, occlusion and random order; areas per curve."""
    input:
        units=units_store(),
        targets=targets_table(),
        cris=cris_tables()["importance"],
        occlusion=occlusion_table(),
        checkpoint=CHECKPOINT_FILES,
        code=code("curves"),
    output:
        curves=curves_tables()["attribution_curves"],
        fidelity=report(
            curves_tables()["fidelity"],
            caption="../report/fidelity.rst",
            category="Importance",
        ),
        checks=curves_tables()["fidelity_checks"],
    log:
        log_path("curves", curves_tag()),
    benchmark:
        benchmark_path("curves", curves_tag())
    conda:
        ENV
    # The last model job, after CRIS is gathered, and often alone: two threads whatever
    # masking.threads says.
    threads: 2
    resources:
        **MASKING_RESOURCES,
        runtime=120,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        settings=json.dumps(CURVES_SETTINGS),
    shell:
        "videoconcepts curves --units {input.units:q} --targets {input.targets:q}"
        " --masking {params.masking:q} --settings {params.settings:q}"
        " --curves {output.curves:q} --fidelity {output.fidelity:q}"
        " --checks {output.checks:q}"
        + RUNTIME_ARGS
        + " cris={input.cris:q} occlusion={input.occlusion:q} > {log:q} 2>&1"
