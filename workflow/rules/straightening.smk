rule straightening:
    """Curvature of each video's trajectory per layer, against its pixels and shuffled
    time (reads the feature stores; straightening.enabled)."""
    input:
        features=lambda wc: feature_stores(model_of("straightening")(wc)),
        decoded=lambda wc: decode_stores(model_of("straightening")(wc)),
        code=code("straightening"),
    output:
        store=directory(f"{RESULTS}/straightening/{{straightening}}/straightening.zarr"),
        table=report(
            f"{RESULTS}/straightening/{{straightening}}/straightening.tsv",
            caption="../report/straightening.rst",
            category="Straightening",
        ),
    log:
        log_path("straightening", "{straightening}"),
    benchmark:
        benchmark_path("straightening", "{straightening}")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=lambda wc: json.dumps(model_of("straightening")(wc).straightening),
    shell:
        "videoconcepts straightening --out {output.store:q} --table {output.table:q}"
        " --settings {params.settings:q} {input.features:q} > {log:q} 2>&1"
