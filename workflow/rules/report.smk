rule report:
    """The run's HTML report: summary, fidelity, ranked concepts with clips, heads."""
    input:
        units=units_store(),
        concepts=concept_stores(),
        features=feature_stores(),
        decoded=[decode_store(video) for video in SAMPLES.index],
        cris=f"{cris_dir()}/concept_importance.tsv",
        stability=f"{cris_dir()}/stability.tsv",
        occlusion=occlusion_table(),
        curves=f"{curves_dir()}/attribution_curves.tsv",
        fidelity=f"{curves_dir()}/fidelity.tsv",
        checks=f"{curves_dir()}/fidelity_checks.tsv",
        heads=f"{heads_dir()}/head_importance.tsv",
        pruning=f"{heads_dir()}/pruning_curve.tsv",
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
        log_path("report", Path(report_dir()).parent.name),
    benchmark:
        benchmark_path("report", Path(report_dir()).parent.name)
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=json.dumps(REPORT_SETTINGS),
        run_settings=json.dumps(run_settings()),
        benchmarks=run_benchmarks(),
        validation=lambda wc, input: (
            f"--validation '{input.validation[0]}'" if input.validation else ""
        ),
    shell:
        "videoconcepts report --out {output:q} --settings {params.settings:q}"
        " --run-settings {params.run_settings:q} --units {input.units:q}"
        " --cris {input.cris:q} --stability {input.stability:q}"
        " --occlusion {input.occlusion:q} --curves {input.curves:q}"
        " --fidelity {input.fidelity:q} --checks {input.checks:q}"
        " --heads {input.heads:q} --pruning {input.pruning:q}"
        " --skipped {input.skipped:q} --benchmarks {params.benchmarks:q}"
        " {params.validation} --concepts {input.concepts:q}"
        " --features {input.features:q} > {log:q} 2>&1"
