rule tubelets:
    """Tubelet proposals (SLIC or random crops) for one layer of one feature shard."""
    input:
        features=f"{FEATURES_DIR}/shard-{{shard}}.zarr",
        match=matched_store,
        code=code("tubelets"),
    output:
        directory(tubelet_store("{proposals}", "{layer}", "{shard}")),
    log:
        log_path(
            "tubelets", f"{FEATURES_TAG}-{{proposals}}/layer-{{layer}}/shard-{{shard}}"
        ),
    benchmark:
        benchmark_path(
            "tubelets", f"{FEATURES_TAG}-{{proposals}}/layer-{{layer}}/shard-{{shard}}"
        )
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=lambda wc: json.dumps(PROPOSALS[wc.proposals]),
        layer=lambda wc: int(wc.layer),
        match=match_arg,
    shell:
        "videoconcepts tubelets --features {input.features:q} --layer {params.layer} --out {output:q}"
        " --settings {params.settings:q} {params.match} > {log:q} 2>&1"
