rule report:
    """The run's HTML report: summary, fidelity, ranked concepts with clips, heads."""
    input:
        units=units_store(),
        concepts=concept_stores(),
        features=feature_stores(),
        decoded=decode_stores(),
        cris=cris_tables()["importance"],
        stability=cris_tables()["stability"],
        cris_shards=cris_shards(),
        occlusion=occlusion_table(),
        curves=curves_tables()["attribution_curves"],
        fidelity=curves_tables()["fidelity"],
        checks=curves_tables()["fidelity_checks"],
        heads=heads_tables()["importance"],
        pruning=heads_tables()["pruning"],
        skipped=skipped_table(),
        validation=validation_tables()[:1] if DEMO else [],
        code=code("report"),
    output:
        report(
            directory(report_dir()),
            htmlindex="index.html",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        log_path("report", Path(report_dir()).name),
    benchmark:
        benchmark_path("report", Path(report_dir()).name)
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=json.dumps(REPORT_SETTINGS),
        run_settings=json.dumps(run_settings()),
        benchmarks=lambda wc: [f"benchmarks={p}" for p in run_benchmarks()],
        inputs=named_inputs,
    shell:
        "videoconcepts report --out {output:q} --settings {params.settings:q}"
        " --run-settings {params.run_settings:q} {params.inputs:q} {params.benchmarks:q}"
        " > {log:q} 2>&1"
