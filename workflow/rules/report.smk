rule report:
    """The run's HTML report: an overview comparing the models, a page per model."""
    input:
        outputs=report_inputs(),
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
    # The run's last job, alone: its model and analysis pages drawn two at a time.
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=json.dumps(REPORT_SETTINGS),
        run_settings=json.dumps(run_settings()),
        benchmarks=report_benchmarks(),
        inputs=named_inputs,
    shell:
        "videoconcepts report --out {output:q} --settings {params.settings:q}"
        " --run-settings {params.run_settings:q} --threads {threads}"
        " {params.inputs:q} {params.benchmarks:q}"
        " > {log:q} 2>&1"
