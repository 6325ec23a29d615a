rule tubelets:
    """Tubelet proposals (SLIC or random crops) for every analysed layer of one feature
    shard: one store per layer, one job per shard (start-up paid once, shards parallel).
    """
    input:
        features=f"{FEATURES_DIR}/shard-{{shard}}.zarr",
        match=matched_stores,
        code=code("tubelets"),
    output:
        [directory(path) for path in shard_tubelet_stores("{proposals}", "{shard}")],
    log:
        log_path("tubelets", f"{FEATURES_TAG}-{{proposals}}/shard-{{shard}}"),
    benchmark:
        benchmark_path("tubelets", f"{FEATURES_TAG}-{{proposals}}/shard-{{shard}}")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=lambda wc: json.dumps(PROPOSALS[wc.proposals]),
        layers=" ".join(str(layer) for layer in LAYERS),
        match=match_arg,
    shell:
        "videoconcepts tubelets --features {input.features:q} --layers {params.layers} --out {output:q}"
        " --settings {params.settings:q} {params.match} > {log:q} 2>&1"
