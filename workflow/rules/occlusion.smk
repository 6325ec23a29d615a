rule occlusion:
    """Baseline importance: each unit masked alone on each video where it appears."""
    input:
        units=lambda wc: units_store(model_of("occlusion")(wc)),
        targets=lambda wc: targets_table(model_of("occlusion")(wc)),
        checkpoint=lambda wc: model_of("occlusion")(wc).checkpoint_files,
        code=code("occlusion"),
    output:
        f"{RESULTS}/occlusion/{{occlusion}}/concept_importance.tsv",
    log:
        log_path("occlusion", "{occlusion}"),
    benchmark:
        benchmark_path("occlusion", "{occlusion}")
    priority: PRIORITY["occlusion"]
    conda:
        ENV
    threads: masking_threads("occlusion")
    resources:
        **masking_resources("occlusion"),
        runtime=120,
    params:
        masking=lambda wc: json.dumps(model_of("occlusion")(wc).masking),
    shell:
        "videoconcepts occlusion --units {input.units:q} --targets {input.targets:q}"
        " --out {output:q} --masking {params.masking:q}"
        + RUNTIME_ARGS
        + " > {log:q} 2>&1"
