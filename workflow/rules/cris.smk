rule cris:
    """One shard of CRIS masks scored on every video (shards run as parallel jobs)."""
    input:
        units=lambda wc: units_store(model_of("cris")(wc)),
        targets=lambda wc: targets_table(model_of("cris")(wc)),
        checkpoint=lambda wc: model_of("cris")(wc).checkpoint_files,
        code=code("cris"),
    output:
        directory(f"{RESULTS}/cris/{{cris}}/shard-{{cris_shard}}.zarr"),
    log:
        log_path("cris", "{cris}/shard-{cris_shard}"),
    benchmark:
        benchmark_path("cris", "{cris}/shard-{cris_shard}")
    priority: PRIORITY["cris"]
    conda:
        ENV
    threads: masking_threads("cris")
    resources:
        **masking_resources("cris"),
        runtime=240,
    params:
        masking=lambda wc: json.dumps(model_of("cris")(wc).masking),
        settings=lambda wc: json.dumps(model_of("cris")(wc).cris),
        shards=lambda wc: model_of("cris")(wc).cris_shards,
    shell:
        "videoconcepts cris --units {input.units:q} --targets {input.targets:q} --out {output:q}"
        " --settings {params.settings:q} --shard {wildcards.cris_shard}"
        " --shards {params.shards} --masking {params.masking:q}"
        + RUNTIME_ARGS
        + " > {log:q} 2>&1"


rule cris_gather:
    """Reduce the CRIS shards: importance, standard error and ranking stability per unit."""
    input:
        units=lambda wc: units_store(model_of("cris_gather")(wc)),
        shards=lambda wc: cris_shards(model_of("cris_gather")(wc)),
        code=code("cris_gather"),
    output:
        importance=report(
            f"{RESULTS}/cris_gather/{{cris_gather}}/concept_importance.tsv",
            caption="../report/importance.rst",
            category="Importance",
        ),
        stability=f"{RESULTS}/cris_gather/{{cris_gather}}/stability.tsv",
    log:
        log_path("cris_gather", "{cris_gather}"),
    benchmark:
        benchmark_path("cris_gather", "{cris_gather}")
    priority: PRIORITY["cris_gather"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=lambda wc: json.dumps(model_of("cris_gather")(wc).gather),
    shell:
        "videoconcepts cris_gather --units {input.units:q} --settings {params.settings:q}"
        " --importance {output.importance:q} --stability {output.stability:q}"
        " {input.shards:q} > {log:q} 2>&1"
