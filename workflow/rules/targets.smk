rule targets:
    """Target class and unmasked score of every usable video, resolved once per model."""
    input:
        decoded=lambda wc: decode_dirs(model_of("targets")(wc)),
        checkpoint=lambda wc: model_of("targets")(wc).checkpoint_files,
        samples=LABELS,
        code=code("targets"),
    output:
        f"{RESULTS}/targets/{{targets}}/targets.tsv",
    log:
        log_path("targets", "{targets}"),
    benchmark:
        benchmark_path("targets", "{targets}")
    priority: PRIORITY["targets"]
    conda:
        ENV
    threads: masking_threads("targets")
    resources:
        **masking_resources("targets"),
        runtime=30,
    params:
        decoded=lambda wc: decode_stores(model_of("targets")(wc)),
        settings=lambda wc: json.dumps(model_of("targets")(wc).targets),
        samples=samples_arg,
    shell:
        "videoconcepts targets --out {output:q} --settings {params.settings:q} {params.samples}"
        + RUNTIME_ARGS
        + " {params.decoded:q} > {log:q} 2>&1"
