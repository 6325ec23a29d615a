rule tubelets:
    """Tubelet proposals (SLIC or random crops) for every analysed layer of one feature
    shard: a folder with one store per layer, one job per shard (start-up paid once,
    shards parallel)."""
    input:
        features=lambda wc: feature_store(model_of("tubelets")(wc), wc.shard),
        match=tubelet_match,
        code=code("tubelets"),
    output:
        directory(f"{RESULTS}/tubelets/{{tubelets}}/shard-{{shard}}"),
    log:
        log_path("tubelets", "{tubelets}/shard-{shard}"),
    benchmark:
        benchmark_path("tubelets", "{tubelets}/shard-{shard}")
    priority: PRIORITY["tubelets"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=lambda wc: json.dumps(
            model_of("tubelets")(wc).proposals[job_of("tubelets", wc)[1]]
        ),
        layers=lambda wc: " ".join(map(str, model_of("tubelets")(wc).layers)),
        out=lambda wc, output: [
            f"{output[0]}/layer-{layer:02d}.zarr"
            for layer in model_of("tubelets")(wc).layers
        ],
        match=lambda wc, input: (
            "--match "
            + " ".join(
                f"'{input.match[0]}/layer-{layer:02d}.zarr'"
                for layer in model_of("tubelets")(wc).layers
            )
            if input.match
            else ""
        ),
    shell:
        "videoconcepts tubelets --features {input.features:q} --layers {params.layers}"
        " --out {params.out:q} --settings {params.settings:q} {params.match} > {log:q} 2>&1"
