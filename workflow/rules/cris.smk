rule cris:
    """One shard of CRIS masks scored on every video (shards run as parallel jobs)."""
    input:
        units=units_store(),
        targets=targets_table(),
        checkpoint=CHECKPOINT_FILES,
        code=code("cris"),
    output:
        directory(cris_shard("{cris_shard}")),
    log:
        log_path("cris", f"{cris_tag()}/shard-{{cris_shard}}"),
    benchmark:
        benchmark_path("cris", f"{cris_tag()}/shard-{{cris_shard}}")
    # All shards before other ready jobs (occlusion, say): the gather waits for the last.
    priority: 1
    conda:
        ENV
    threads: MASKING_THREADS
    resources:
        **MASKING_RESOURCES,
        runtime=240,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        settings=json.dumps(CRIS_SETTINGS),
        shards=config["cris"]["shards"],
    shell:
        "videoconcepts cris --units {input.units:q} --targets {input.targets:q} --out {output:q}"
        " --settings {params.settings:q} --shard {wildcards.cris_shard}"
        " --shards {params.shards} --masking {params.masking:q}"
        + RUNTIME_ARGS
        + " > {log:q} 2>&1"


rule cris_gather:
    """Reduce the CRIS shards: importance, standard error and ranking stability per unit."""
    input:
        units=units_store(),
        shards=cris_shards(),
        code=code("cris_gather"),
    output:
        importance=report(
            cris_tables()["importance"],
            caption="../report/importance.rst",
            category="Importance",
        ),
        stability=cris_tables()["stability"],
    log:
        log_path("cris_gather", gather_tag()),
    benchmark:
        benchmark_path("cris_gather", gather_tag())
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=json.dumps(GATHER_SETTINGS),
    shell:
        "videoconcepts cris_gather --units {input.units:q} --settings {params.settings:q}"
        " --importance {output.importance:q} --stability {output.stability:q}"
        " {input.shards:q} > {log:q} 2>&1"
